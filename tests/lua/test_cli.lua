-- The crlab command: -e, scripts with arguments, exit statuses, and the
-- interactive prompt driven through a pipe (results printed, multi-line
-- input, an error reported and the prompt going on).
local t = require 'tap'

local root = os.getenv('CRLAB_HOME') or '.'
local crlab_cmd = root .. '/scripts/crlab'

local function sh(cmd, stdin)
  local tmp = os.tmpname()
  if stdin then
    local f = io.open(tmp, 'w')
    f:write(stdin)
    f:close()
  end
  local p = io.popen('( ' .. cmd .. (stdin and (' < ' .. tmp) or ' < /dev/null') ..
                     ' ) 2>&1; echo "rc=$?"')
  local out = p:read('*a')
  p:close()
  os.remove(tmp)
  local rc = tonumber(out:match('rc=(%d+)\n$'))
  return out:gsub('rc=%d+\n$', ''), rc
end

local q = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local out, rc = sh(crlab_cmd .. ' -e ' .. q(
  'local l = crlab.loss.crl{alpha=1.5, beta=1}; ' ..
  'print(l:forward(crlab.tensor{{2,1,0.1},{0.5,2.5,-1}}, {0,1}))'))
t.ok(rc == 0 and math.abs(tonumber(out) - 0.8382228) < 1e-6,
     'crlab -e prints the mean CRL of the README example: ' .. out:gsub('\n', ''))

out, rc = sh(crlab_cmd .. ' -e ' .. q('print(crlab.tensor{{2,1,0.1},{0.5,2.5,-1}})'))
t.ok(out:find('[crlab.FloatTensor of size 2x3]', 1, true), 'crlab -e pretty-prints tensors')

local script = os.tmpname() .. '.lua'
local f = io.open(script, 'w')
f:write('print(arg[0] == ... or arg[0], arg[1], arg[2], select("#", ...))\n')
f:close()
out, rc = sh(crlab_cmd .. ' ' .. script .. ' alpha 2')
t.ok(rc == 0 and out:find('alpha\t2\t2', 1, true), 'a script gets arg[1..n] and ... : ' .. out:gsub('\n', ' '))
os.remove(script)

out, rc = sh(crlab_cmd .. ' -e ' .. q('local x = crlab.zeros(2) + crlab.zeros(3)'))
t.ok(rc == 1 and out:find('do not broadcast', 1, true) and out:find('stack traceback', 1, true),
     'an error in -e code prints the message and a traceback and exits 1')
-- The library's own message survives whatever location it carries, and
-- points at the user's line rather than the binding (issue: a message
-- beginning with a lua/crlab/*.lua location used to be dropped).
out, rc = sh(crlab_cmd .. ' -e ' .. q('local t = crlab.tensor{1,2}; print(t[3])'))
t.ok(rc == 1 and out:find('crlab: (-e):1: index 3 is out of range for dimension 1 of size 2', 1, true)
     and not out:find('lua/crlab/', 1, true), 'an out-of-range index reports its message at the user line: ' .. out:gsub('\n', ' | '))
local train = root .. '/scripts/train.lua'
-- runs that fail go to a scratch folder, never outside it
local scratch = os.tmpname()
os.remove(scratch)
assert(os.execute('mkdir -p ' .. scratch) == 0)
out, rc = sh(crlab_cmd .. ' ' .. train .. ' --epochs 0 --out ' .. scratch .. '/x')
t.ok(rc == 2 and out:find("option --epochs must be an integer >= 1, got '0'", 1, true) and not out:find('traceback'),
     'train.lua --epochs 0 is refused at once, the message alone: ' .. out:gsub('\n', ' | '))
for _, case in ipairs({{'--model nope', "unknown model 'nope'"},
                       {'--schedule nope', 'nope'}}) do
  out, rc = sh(crlab_cmd .. ' ' .. train .. ' ' .. case[1] .. ' --out ' .. scratch .. '/x')
  t.ok(rc == 1 and out:find(case[2], 1, true) and out:find('stack traceback', 1, true),
       'train.lua ' .. case[1] .. ' prints the message, then the traceback: ' .. out:gsub('\n', ' | '))
end
do
  local d = os.tmpname()
  os.remove(d)
  os.execute('mkdir -p ' .. d)
  local f = io.open(d .. '/checkpoint.safetensors', 'wb')
  f:write(string.rep('x', 5))
  f:close()
  out, rc = sh(crlab_cmd .. ' ' .. train .. ' --out ' .. d .. ' --resume --epochs 1')
  t.ok(rc == 1 and out:find('checkpoint.safetensors', 1, true) and not out:find('^crlab: stack traceback'),
       'a truncated checkpoint on --resume is named in the message: ' .. out:gsub('\n', ' | '))
  os.execute('rm -rf ' .. d)
end
-- --device: a device that cannot be used ends the run at once (exit 2,
-- the message alone, before any data is read or folder made)
if not require('crlab').cuda.available() then
  out, rc = sh(crlab_cmd .. ' ' .. train .. ' --device cuda --dataset cifar10 --data /nonexistent --out ' .. scratch .. '/x')
  t.ok(rc == 2 and out:find('--device cuda, but no CUDA device can be used here', 1, true) and
       out:find('use --device cpu', 1, true) and not out:find('traceback', 1, true) and not out:find('nonexistent'),
       'train.lua --device cuda without a GPU fails at once with the reason: ' .. out:gsub('\n', ' | '))
else
  t.skip('train.lua --device cuda without a GPU: this machine has one')
end
-- --threads beyond what the C core allows is refused before any work (it
-- crashed inside libgomp)
out, rc = sh(crlab_cmd .. ' ' .. train .. ' --threads 100000 --out ' .. scratch .. '/x')
t.ok(rc == 1 and out:find('train: --threads: 100000 threads requested, at most 1024', 1, true) and
     out:find('stack traceback', 1, true), 'train.lua --threads 100000 is refused with the limit: ' .. out:gsub('\n', ' | '))
out, rc = sh(crlab_cmd .. ' -e ' .. q('local C = crlab.C; local before = C.crl_get_num_threads(); ' ..
                                      'local rc = C.crl_set_num_threads(1025); ' ..
                                      'print(rc ~= 0, C.crl_get_num_threads() == before, require("crlab.core").last_error())'))
t.ok(rc == 0 and out:find('^true\ttrue\tcrl_set_num_threads: 1025 threads requested, at most 1024'),
     'crl_set_num_threads(1025) fails, names the limit and keeps the count: ' .. out:gsub('\n', ' | '))
out, rc = sh(crlab_cmd .. ' ' .. train .. ' --device tpu --out ' .. scratch .. '/x')
t.ok(rc == 2 and out:find("unknown device 'tpu' (cpu, cuda)", 1, true), 'an unknown --device is refused: ' ..
     out:gsub('\n', ' | '))
out, rc = sh(crlab_cmd .. ' ' .. train .. ' --precision bf16 --out ' .. scratch .. '/x')
t.ok(rc == 2 and out:find('--precision bf16 needs --device cuda', 1, true) and not out:find('traceback', 1, true),
     '--precision bf16 without --device cuda is refused at once: ' .. out:gsub('\n', ' | '))
out, rc = sh(crlab_cmd .. ' ' .. train .. ' --precision half --out ' .. scratch .. '/x')
t.ok(rc == 2 and out:find("unknown precision 'half' (fp32, bf16)", 1, true), 'an unknown --precision is refused: ' ..
     out:gsub('\n', ' | '))
local session0 = 't = crlab.tensor{1,2}\nt[5]\nprint("after")\n'
out, rc = sh(crlab_cmd, session0)
t.ok(out:find('stdin:1: index 5 is out of range for dimension 1 of size 2', 1, true) and out:find('after', 1, true),
     'the prompt keeps the message of an out-of-range index and goes on: ' .. out:gsub('\n', ' | '))
out, rc = sh(crlab_cmd .. ' /nonexistent/file.lua')
t.ok(rc == 1 and out:find('/nonexistent/file.lua', 1, true), 'a missing script is named: ' .. out:gsub('\n', ' '))
out, rc = sh(crlab_cmd .. ' --bogus')
t.ok(rc == 1 and out:find("unknown option '--bogus'", 1, true), 'an unknown option is refused with the usage')
out, rc = sh(crlab_cmd .. ' -h')
t.ok(rc == 0 and out:find('usage: crlab', 1, true), 'crlab -h prints the usage')

-- the prompt, fed through a pipe
local session = table.concat({
  '1 + 1',
  'x = crlab.tensor{{1, 2}, {3, 4}}',
  'x:sum()',
  'for i = 1, 3 do',
  '  io.write("line", i, " ")',
  'end',
  'crlab.zeros(2) + crlab.zeros(3)',
  'x',
  '{a = 1}',
  '=x[2][2] * 10',
}, '\n') .. '\n'
out, rc = sh(crlab_cmd, session)
t.eq(rc, 0, 'the prompt exits 0 at the end of input')
if not t.ok(out:find('^2\n'), 'an expression prints its value') then t.diag(out) end
t.ok(out:find('\n10\n', 1, true), 'x:sum() after an assignment prints 10')
t.ok(out:find('line1 line2 line3', 1, true), 'a for loop over several lines runs once complete')
t.ok(out:find('crl_tensor_binary: shapes (2) and (3) do not broadcast', 1, true),
     'an error prints its message')
t.ok(out:find(' 1  2\n 3  4\n[crlab.FloatTensor of size 2x2]', 1, true),
     'the prompt goes on after an error and pretty-prints a tensor')
t.ok(out:find('a : 1', 1, true), 'a table result is listed')
t.ok(out:find('\n40\n', 1, true), '=expr prints the expression')
-- Ctrl-C at the prompt: at an empty prompt it cancels the line, in a running
-- statement it interrupts it (a tight loop the JIT would compile included),
-- in a statement being continued it drops the statement; every time, and the
-- session goes on. Through a pipe the signal is sent with kill -INT; under a
-- pseudo-terminal (script(1), readline) it is typed: \003.
local function ctrl_c_session(tty)
  local d = os.tmpname()
  os.remove(d)
  os.execute('mkdir -p ' .. d)
  -- (under `make asan` the readline session leaves readline's own allocations to LeakSanitizer: not checked)
  local run = tty and string.format('HOME=%s TERM=dumb ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" script -qfec %s /dev/null',
                                    d, q(crlab_cmd)) or crlab_cmd
  local intr = tty and "printf '\\003' >&3" or 'kill -INT $pid'
  local sh_script = table.concat({
    'd=' .. d,
    'mkfifo $d/in',
    run .. ' < $d/in > $d/out 2>&1 &',
    'pid=$!',
    'exec 3> $d/in',
    -- the words looked for are joined at run time, so an echo of the input never matches
    'trap "" PIPE',
    'fin() {',
    '  exec 3>&-',
    '  n=0; while kill -0 $pid 2>/dev/null && [ $n -lt 60 ]; do n=$((n+1)); sleep 0.05; done',
    '  kill -0 $pid 2>/dev/null && { echo "(still running: killed)"; kill -KILL $pid; }',
    '  wait $pid; echo "session rc=$?"',
    '  tr -d "\\r" < $d/out',
    '  exit 0',
    '}',
    'waitfor() { n=0; while ! grep -q "$1" $d/out; do n=$((n+1)); if [ $n -gt 200 ]; then echo "(no $1)"; fin; fi; sleep 0.05; done; }',
    'echo \'print("rea".."dy")\' >&3; waitfor ready',
    intr .. '; sleep 0.3',
    'echo \'print("ali".."ve1")\' >&3; waitfor alive1',
    'echo \'io.write("lo".."op1", string.char(10)) io.stdout:flush() local x = 0 while true do x = x + 1 end\' >&3; waitfor loop1; sleep 0.3',
    intr .. '; sleep 0.3',
    'echo \'print("ali".."ve2")\' >&3; waitfor alive2',
    'echo \'io.write("lo".."op2", string.char(10)) io.stdout:flush() for i = 1, 1e15 do local y = i * 2 end\' >&3; waitfor loop2; sleep 0.3',
    intr .. '; sleep 0.3',
    'echo \'print("ali".."ve3")\' >&3; waitfor alive3',
    'echo \'for i = 1, 2 do\' >&3; sleep 0.3',
    intr .. '; sleep 0.3',
    'echo \'print("ali".."ve4")\' >&3; waitfor alive4',
    tty and "printf '\\004' >&3" or ':',
    'fin',
  }, '\n') .. '\n'
  local f = io.open(d .. '/t.sh', 'w')
  f:write(sh_script)
  f:close()
  local o = sh('sh ' .. d .. '/t.sh')
  os.execute('rm -rf ' .. d)
  local _, interrupted = o:gsub('interrupted', '')
  return o, interrupted
end
local function all_alive(o)
  return o:find('\nalive1\n', 1, true) and o:find('\nalive2\n', 1, true) and o:find('\nalive3\n', 1, true) and
         o:find('\nalive4\n', 1, true) and not o:find('(no ', 1, true) and not o:find('still running', 1, true)
end
local nint
out, nint = ctrl_c_session(false)
t.ok(all_alive(out) and out:find('session rc=0', 1, true) and nint == 2 and not out:find('repl.lua', 1, true) and
     out:find('stdin:1:', 1, true),
     'SIGINT at an empty prompt, in two loops (one JIT-compilable) and in a continued statement: the session ' ..
     'goes on: ' .. out:gsub('\n', ' | '))
if os.execute('command -v script > /dev/null 2>&1') == 0 and pcall(require('ffi').load, 'readline') then
  out, nint = ctrl_c_session(true)
  t.ok(all_alive(out) and out:find('session rc=0', 1, true) and nint == 2,
       'Ctrl-C typed under a terminal (readline): the line is cancelled, both loops interrupted, the session goes ' ..
       'on: ' .. out:gsub('\n', ' | '))
else
  t.skip('Ctrl-C under a terminal: no script(1) or no readline here')
end

-- show.lua on the real Fashion-MNIST and on a generated CIFAR-format fixture
local dir = os.tmpname()
os.remove(dir)
out, rc = sh(crlab_cmd .. ' ' .. root .. '/scripts/make_fixture.lua ' .. dir .. ' 20')
t.ok(rc == 0 and out:find('CIFAR-10 binary layout', 1, true), 'make_fixture.lua writes a CIFAR-format fixture')
local image = require('crlab.image')
for _, ds in ipairs({{'fashion-mnist', ''}, {'cifar10', ' --data ' .. dir}}) do
  local png = dir .. '-' .. ds[1] .. '.png'
  out, rc = sh(crlab_cmd .. ' ' .. root .. '/scripts/show.lua --dataset ' .. ds[1] .. ds[2] .. ' --n 8 --cols 4 --out ' .. png)
  local ok, img = pcall(image.load, png)
  t.ok(rc == 0 and ok and img:size(1) == 3 and img:size(2) > 56 and out:find('with class names'),
       'show.lua writes a captioned sample grid for ' .. ds[1] .. ': ' .. out:gsub('\n', ' '))
  os.remove(png)
end
os.execute('rm -rf ' .. dir)
os.execute('rm -rf ' .. scratch)
t.done()
