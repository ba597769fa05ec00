-- crlab.slurm: the job-array script's text and its options (always); the
-- script's own logic run by sh with a stand-in scontrol (always); submit
-- and wait against stand-in sbatch/squeue/scontrol (always); then, when
-- Slurm and munge are installed and we are root, a real single-node Slurm
-- (tests/slurm/start.sh) runs the smoke suite as a job array with
-- --stop-after 1, so that every task requeues itself after each epoch, and
-- is stopped again (tests/slurm/stop.sh).
local t = require 'tap'
local ffi = require 'ffi'
local slurm = require 'crlab.slurm'
local json = require 'crlab.json'

pcall(ffi.cdef, 'int setenv(const char *name, const char *value, int overwrite);')
pcall(ffi.cdef, 'int unsetenv(const char *name);')

local root = os.getenv('CRLAB_HOME') or '.'
local tio = require 'testio'
local q, sh, read, write = tio.q, tio.sh, tio.read, tio.write

-- stdout+stderr and exit status of a shell command

local scratch = os.tmpname()
os.remove(scratch)
assert(os.execute('mkdir -p ' .. q(scratch) .. ' && chmod 755 ' .. q(scratch)) == 0)

local function opts(more)
  local o = {job_name = 'crlab-smoke', array_size = 4, command = 'echo task $SLURM_ARRAY_TASK_ID',
             workdir = '/srv/crlab', log_dir = '/srv/runs/smoke/slurm-logs'}
  for k, v in pairs(more or {}) do o[k] = v end
  return o
end
local function has_line(text, line) return ('\n' .. text .. '\n'):find('\n' .. line .. '\n', 1, true) ~= nil end

---------------------------------------------------------------------------
-- the script's text

local full = slurm.script(opts{time = '02:00:00', cpus_per_task = 4, gpus = 1, partition = 'gpu',
                               extra = {'--mem=16G', '--qos=normal', '--constraint=a100|h100'}})
t.ok(full:sub(1, 10) == '#!/bin/sh\n', 'the script starts with #!/bin/sh')
for _, l in ipairs{'--job-name=crlab-smoke', '--array=1-4', '--requeue', '--open-mode=append', '--chdir=/srv/crlab',
                   '--output=/srv/runs/smoke/slurm-logs/%x_%A_%a.out',
                   '--error=/srv/runs/smoke/slurm-logs/%x_%A_%a.err', '--time=02:00:00', '--signal=B:USR1@120',
                   '--cpus-per-task=4', '--gres=gpu:1', '--partition=gpu', '--mem=16G', '--qos=normal',
                   '--constraint=a100|h100'} do
  t.ok(has_line(full, '#SBATCH ' .. l), 'the script has #SBATCH ' .. l)
end
-- sbatch reads #SBATCH lines only up to the first command
local last_sbatch, first_cmd = 0, nil
local n = 0
for line in (full .. '\n'):gmatch('([^\n]*)\n') do
  n = n + 1
  if line:match('^#SBATCH ') then last_sbatch = n end
  if not first_cmd and line:match('^[^#%s]') then first_cmd = n end
end
t.ok(first_cmd and last_sbatch < first_cmd, 'every #SBATCH line comes before the first command')
t.ok(has_line(full, 'echo task $SLURM_ARRAY_TASK_ID'), 'the command is in the body as given')
t.ok(full:find('scontrol requeue "$task"', 1, true) and full:find('task="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
     1, true), 'the task requeues itself by ARRAYJOB_TASK')

local minimal = slurm.script(opts())
t.ok(not minimal:find('#SBATCH --time', 1, true) and not minimal:find('#SBATCH --signal', 1, true) and
     not minimal:find('#SBATCH --gres', 1, true) and not minimal:find('#SBATCH --partition', 1, true) and
     not minimal:find('#SBATCH --cpus-per-task', 1, true), 'without time, gpus, partition, cpus: no such #SBATCH line')
t.ok(not slurm.script(opts{gpus = 0}):find('#SBATCH --gres', 1, true), 'gpus = 0 asks for no GPU')
t.ok(has_line(slurm.script(opts{time = '1:00:00', requeue_before = 300}), '#SBATCH --signal=B:USR1@300'),
     'requeue_before sets the signal time')
t.ok(not slurm.script(opts{time = '1:00:00', requeue_before = 0}):find('#SBATCH --signal', 1, true),
     'requeue_before = 0: no signal')

local times = {{'90', 5400}, {'10:30', 630}, {'1:00:00', 3600}, {'2-0', 172800}, {'1-2:3', 93780},
               {'1-00:00:01', 86401}, {45, 2700}, {'0', nil}, {'0:00:00', nil}, {'1:2:3:4', nil}, {'abc', nil},
               {'', nil}, {'-5', nil}, {1.5, nil}}
for _, c in ipairs(times) do
  t.eq(slurm.time_seconds(c[1]), c[2], 'time_seconds(' .. tostring(c[1]) .. ')')
end

local bad = {
  {{bogus = 1}, "unknown option 'bogus'"},
  {{job_name = 'a b'}, 'option job_name must be'},
  {{array_size = 0}, 'option array_size must be an integer >= 1'},
  {{array_size = 1.5}, 'option array_size must be'},
  {{array_size = '4'}, 'option array_size must be'},
  {{command = '   '}, 'option command must be a non-empty shell command'},
  {{workdir = 'rel/dir'}, 'option workdir must be an absolute path'},
  {{log_dir = '/a b'}, 'option log_dir must be'},
  {{log_dir = '/runs/%j'}, 'option log_dir must be'},
  {{time = '1:2:3:4'}, 'option time must be a Slurm time limit'},
  {{time = '0'}, 'option time must be'},
  {{cpus_per_task = 0}, 'option cpus_per_task must be'},
  {{gpus = -1}, 'option gpus must be'},
  {{partition = 'a;b'}, 'option partition must be'},
  {{extra = '--mem=1G'}, 'option extra must be a list of sbatch options'},
  {{extra = {'--mem 1G'}}, 'got element 1, --mem 1G'},
  {{extra = {'--mem=1G', 'mem=1G'}}, 'got element 2, mem=1G'},
  {{extra = {'--comment="x"'}}, 'got element 1, --comment="x"'},
  {{extra = {mem = '1G'}}, 'option extra must be a list'},
  {{requeue_before = 60}, 'option requeue_before needs a time limit'},
  {{time = '1'}, 'option requeue_before (120 s) must be shorter than the time limit 1 (60 s)'},
  {{requeue_before = -1, time = '10'}, 'option requeue_before must be'},
}
for _, c in ipairs(bad) do
  t.errors(function() slurm.script(opts(c[1])) end, c[2], 'slurm.script refuses ' .. c[2])
end
t.errors(function() slurm.script(opts{command = false}) end, 'option command must be', 'command = false')
do
  local o = opts()
  o.command = nil
  t.errors(function() slurm.script(o) end, "option 'command' is required", 'a missing command is named')
end
t.errors(function() slurm.script('x') end, 'slurm.script: expects a table of options, got string', 'not a table')

-- write: the same text, executable, the log folder made
do
  local o = opts{workdir = scratch, log_dir = scratch .. '/w/logs'}
  local text = slurm.write(scratch .. '/w.sbatch', o)
  t.ok(text == slurm.script(o) and read(scratch .. '/w.sbatch') == text, 'slurm.write writes the script text')
  local _, rc = sh('test -x ' .. q(scratch .. '/w.sbatch') .. ' && test -d ' .. q(scratch .. '/w/logs'))
  t.eq(rc, 0, 'the written script is executable and its log folder exists')
  t.ok(read(scratch .. '/w.sbatch.tmp') == nil, 'no temporary file is left')
  t.errors(function() slurm.write(scratch .. '/no/such/dir/x.sbatch', o) end, 'slurm.write: cannot write',
           'a script path in a missing folder is refused')
  t.errors(function() slurm.write(scratch .. '/x.sbatch', opts{array_size = -1}) end,
           'slurm.write: option array_size', 'write checks the options, naming itself')
  -- a write cut short when the buffer is flushed (a full disk; here the file-size limit) is an error, and the
  -- script already there stays whole
  local root = os.getenv('CRLAB_HOME') or '.'
  local code = string.format("local s = require('crlab.slurm'); local o = {job_name = 'x', array_size = 2, " ..
                             "command = 'true', workdir = '/', log_dir = %q, extra = {'--comment=' .. " ..
                             "string.rep('c', 2000)}}; s.write(%q, o)", scratch .. '/w/logs', scratch .. '/w.sbatch')
  local out, rc = sh("trap '' XFSZ; ulimit -f 1; " .. q(root .. '/scripts/crlab') .. ' -e ' .. q(code))
  t.ok(rc ~= 0 and out:find('slurm.write: cannot write', 1, true) and read(scratch .. '/w.sbatch') == text and
       read(scratch .. '/w.sbatch.tmp') == nil, 'a write cut short at close is refused and the old script stays: ' ..
       out:match('[^\n]*'))
end

---------------------------------------------------------------------------
-- the script's logic, run by sh with a stand-in scontrol that records its
-- arguments (exit FAKE_RC)

local bin = scratch .. '/bin'
assert(os.execute('mkdir -p ' .. q(bin)) == 0)
write(bin .. '/scontrol', '#!/bin/sh\necho "$*" >> "$FAKE_LOG"\nexit ${FAKE_RC:-0}\n', '+x')
local calls = scratch .. '/scontrol.calls'

-- runs the script for array task 7_2 with `command`; returns its output,
-- exit status and the stand-in scontrol's calls
local function run_task(command, env, pre)
  os.remove(calls)
  local o = opts{command = command, workdir = scratch, log_dir = scratch .. '/logs'}
  write(scratch .. '/task.sh', slurm.script(o))
  local envs = 'PATH=' .. q(bin) .. ':"$PATH" FAKE_LOG=' .. q(calls) ..
               ' SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=2 ' ..
               (env or '')
  local out, rc = sh(pre and pre(envs) or (envs .. ' sh ' .. q(scratch .. '/task.sh')))
  return out, rc, read(calls) or ''
end

local out, rc, c = run_task('exit 75')
t.ok(rc == 0 and c == 'requeue 7_2\n' and out:find('stopped early with epochs left (exit 75); requeueing it', 1, true),
     'exit 75: the task requeues itself (scontrol requeue 7_2) and exits 0: ' .. out:gsub('\n', ' | '))
out, rc, c = run_task('exit 75', 'FAKE_RC=1')
t.ok(rc == 75 and out:find('scontrol requeue 7_2 failed', 1, true),
     'exit 75 and a failed requeue: the task says so and ends with 75: ' .. out:gsub('\n', ' | '))
out, rc, c = run_task('exit 3')
t.ok(rc == 3 and c == '' and out:find('ended with exit status 3', 1, true),
     'another exit status ends the task with it, no requeue: rc ' .. tostring(rc))
out, rc, c = run_task('echo "task=$SLURM_ARRAY_TASK_ID in=$(pwd)"')
t.ok(rc == 0 and c == '' and out:find('task=2 in=' .. scratch, 1, true),
     'the command runs in workdir and sees $SLURM_ARRAY_TASK_ID: ' .. out:gsub('\n', ' | '))
do
  local o = opts{command = 'true', workdir = scratch .. '/missing', log_dir = scratch .. '/logs'}
  write(scratch .. '/task.sh', slurm.script(o))
  out, rc = sh('sh ' .. q(scratch .. '/task.sh'))
  t.ok(rc == 1 and out:find('cannot enter ' .. scratch .. '/missing', 1, true),
       'a missing workdir ends the task with 1, naming it: ' .. out:gsub('\n', ' | '))
end
-- SIGUSR1 to the batch shell (what --signal=B:USR1@T sends): it requeues the
-- task and goes on waiting; the command itself does not get the signal.
out, rc, c = run_task('touch ' .. q(scratch .. '/started') .. '; sleep 1; touch ' .. q(scratch .. '/finished'), nil,
  function(envs)
    os.remove(scratch .. '/started')
    os.remove(scratch .. '/finished')
    return envs .. ' sh ' .. q(scratch .. '/task.sh') .. ' & pid=$!; i=0; ' ..
           'while [ ! -f ' .. q(scratch .. '/started') .. ' ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ' ..
           'kill -USR1 $pid; wait $pid'
  end)
t.ok(rc == 0 and c == 'requeue 7_2\n' and out:find('the time limit is near; requeueing it', 1, true)
     and read(scratch .. '/finished') ~= nil,
     'SIGUSR1: the task requeues itself, the command runs on: rc ' .. tostring(rc) .. ', ' .. out:gsub('\n', ' | '))

---------------------------------------------------------------------------
-- submit and wait against stand-in commands

local path0 = os.getenv('PATH')
local empty = scratch .. '/empty'
assert(os.execute('mkdir -p ' .. q(empty)) == 0)
ffi.C.setenv('PATH', empty, 1)
local avail, why = slurm.available()
t.ok(not avail and why:find('sbatch was not found', 1, true),
     'no sbatch on PATH: available() says so: ' .. tostring(why))
t.errors(function() slurm.submit(scratch .. '/w.sbatch') end, 'slurm.submit: sbatch was not found on PATH',
         'submit without sbatch')
t.errors(function() slurm.wait('42', 1) end, 'slurm.wait: sbatch was not found', 'wait without Slurm')
ffi.C.setenv('PATH', path0, 1)

local fake = scratch .. '/fakebin'
assert(os.execute('mkdir -p ' .. q(fake)) == 0)
ffi.C.setenv('PATH', fake .. ':' .. path0, 1)
write(fake .. '/sbatch', '#!/bin/sh\necho "42;crlabtest"\n', '+x')
write(fake .. '/squeue', '#!/bin/sh\necho "42_1 PENDING BeginTime"\necho "42_2 RUNNING None"\n', '+x')
write(fake .. '/scontrol', '#!/bin/sh\ncat "$FAKE_SHOW"\n', '+x')
t.eq(slurm.submit(scratch .. '/w.sbatch'), '42', 'submit returns the id sbatch --parsable prints')
t.errors(function() slurm.submit(scratch .. '/nothing.sbatch') end, 'slurm.submit: cannot read the script',
         'submit of a missing file')
write(fake .. '/sbatch', '#!/bin/sh\necho "$*" > "$FAKE_LOG"\necho 44\n', '+x')
ffi.C.setenv('FAKE_LOG', calls, 1)
t.eq(slurm.submit(scratch .. '/w.sbatch', {'--array=3,7', '--qos=low'}), '44', 'submit with options')
t.eq(read(calls), '--parsable --array=3,7 --qos=low ' .. scratch .. '/w.sbatch\n',
     'the options go to sbatch before the script')
t.errors(function() slurm.submit(scratch .. '/w.sbatch', {'--array 3'}) end,
         "slurm.submit: options must be a list of sbatch options, each like '--mem=32G' (no spaces or quotes), " ..
         'got element 1, --array 3', 'a bad sbatch option is refused, named')
t.errors(function() slurm.submit(scratch .. '/w.sbatch', '--array=3') end, 'got string', 'options must be a list')
local tasks, msg = slurm.wait('42', 0, 0.1)
t.ok(tasks == nil and msg:find('job 42 not finished after 0 s: 42_1 PENDING BeginTime; 42_2 RUNNING None', 1, true),
     'wait returns nil and what is queued when the timeout passes: ' .. tostring(msg))
t.errors(function() slurm.wait('4x', 1) end, "slurm.wait: expects a job id of digits, got '4x'", 'a bad job id')
t.errors(function() slurm.wait('42') end, 'timeout must be a number', 'wait needs a timeout')
write(fake .. '/sbatch', '#!/bin/sh\n' ..
      'echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2\nexit 1\n', '+x')
t.errors(function() slurm.submit(scratch .. '/w.sbatch') end,
         'failed (exit 1): sbatch: error: Batch job submission failed: Invalid partition name specified',
         "sbatch's refusal is passed on")
-- finished: squeue lists nothing; the records come from scontrol show job
write(fake .. '/squeue', '#!/bin/sh\nexit 0\n', '+x')
write(scratch .. '/show', [[
JobId=43 ArrayJobId=42 ArrayTaskId=2 JobName=crlab-smoke
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   JobState=COMPLETED Reason=None Dependency=(null)
   Requeue=1 Restarts=2 BatchFlag=1 Reboot=0 ExitCode=0:0

JobId=42 ArrayJobId=42 ArrayTaskId=1 JobName=crlab-smoke
   JobState=FAILED Reason=NonZeroExitCode Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=1:0

]])
ffi.C.setenv('FAKE_SHOW', scratch .. '/show', 1)
tasks = slurm.wait('42', 5, 0.1)
t.ok(tasks and tasks[2] and tasks[2].state == 'COMPLETED' and tasks[2].restarts == 2 and tasks[2].job_id == '43' and
     tasks[1] and tasks[1].state == 'FAILED' and tasks[1].exit_code == '1:0',
     'wait reads each array task\'s state, restarts and exit code from scontrol show job')
ffi.C.setenv('PATH', path0, 1)

---------------------------------------------------------------------------
-- a real single-node Slurm

local function skip_real(reason)
  t.skip('real Slurm: ' .. reason)
end
local missing = {}
for _, prog in ipairs{'munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol'} do
  local o = sh('command -v ' .. prog)
  if o == '' then missing[#missing + 1] = prog end
end
local uid = sh('id -u'):gsub('%s+', '')

if os.getenv('CRLAB_ASAN') then
  skip_real('not under make asan (the daemons and the job shells must not run with the sanitizer runtime ' ..
            'preloaded); ' ..
            'it runs under make test')
elseif uid ~= '0' then
  skip_real('needs root (slurmd starts the jobs; tests/slurm/start.sh runs the daemons as the caller)')
elseif #missing > 0 then
  skip_real('not installed: ' .. table.concat(missing, ', ') .. ' (Debian: munge slurmctld slurmd slurm-client; ' ..
            'scripts/setup.sh installs them)')
else
  local cluster = scratch .. '/cluster'
  local t0 = os.time()
  -- the watchdog stops the cluster after 10 min should this test be killed
  out, rc = sh(q(root .. '/tests/slurm/start.sh') .. ' ' .. q(cluster) .. ' 600')
  if rc == 2 then
    skip_real(out:gsub('\n', ' '))
  elseif not t.ok(rc == 0, 'tests/slurm/start.sh starts munged, slurmctld and slurmd: ' .. out:gsub('\n', ' | ')) then
    sh(q(root .. '/tests/slurm/stop.sh') .. ' ' .. q(cluster))
  else
    ffi.C.setenv('SLURM_CONF', cluster .. '/slurm.conf', 1)
    local ok, err = pcall(function()
      local suite_out = scratch .. '/suite'
      out, rc = sh(q(root .. '/scripts/crlab') .. ' ' .. q(root .. '/scripts/suite.lua') ..
                   ' slurm smoke --out ' .. q(suite_out) .. ' --stop-after 1 --cpus 1')
      t.ok(rc == 0 and read(suite_out .. '/slurm.sh'), 'suite.lua slurm smoke writes the job array: ' ..
           out:gsub('\n', ' | '))
      local suite = require 'crlab.suite'
      local s = suite.load(suite.resolve('smoke'), {out = suite_out})
      local epochs = s.runs[1].options.epochs
      assert(epochs >= 2, 'the smoke suite needs 2 epochs or more to exercise the requeue')
      local id = slurm.submit(suite_out .. '/slurm.sh')
      t.ok(id:match('^%d+$'), 'submitted as job ' .. id)
      -- preemption (PreemptMode=REQUEUE) ends a running task and requeues
      -- it: scontrol requeue from outside does the same. Task 1 is requeued
      -- as soon as it is seen running a trainer. On a fast machine a start
      -- may end by itself first (exit 75: the task requeues itself), and the
      -- outside request then fails ("pending") or merges with the task's own;
      -- so the log is read once the task has moved on, and the next start is
      -- tried until one was cut short: a start whose log says neither how it
      -- stopped nor how it ended.
      local first = s.runs[1]
      local task1_log = string.format('%s/slurm-logs/crlab-%s_%s_1.out', suite_out, s.name, id)
      local function cut_starts()
        local log = read(task1_log) or ''
        local _, n = log:gsub('crlab: task %d+_%d+, start %d+', '')
        local cuts = {}
        for k = 1, n - 1 do
          local seg = log:match('start ' .. k .. ',(.-)start ' .. (k + 1) .. ',')
          if seg and not seg:find('stopped early', 1, true) and not seg:find('ended with', 1, true) then
            cuts[#cuts + 1] = k
          end
        end
        return cuts, n
      end
      local function task1_state() return (sh('squeue -h -j ' .. id .. '_1 -o %T'):gsub('%s+', '')) end
      local requeued = false
      for _ = 1, 4 do
        local running = false
        for _ = 1, 600 do
          local state = task1_state()
          if state == 'RUNNING' and read(first.dir .. '/train.log') then running = true; break end
          if state == '' then break end -- ended
          sh('sleep 0.1')
        end
        if not running then break end
        local _, before = cut_starts()
        out, rc = sh('scontrol requeue ' .. id .. '_1')
        if rc == 0 then
          -- wait for the next start (or the end) and see whether this one was cut
          for _ = 1, 600 do
            local _, n = cut_starts()
            if n > before or task1_state() == '' then break end
            sh('sleep 0.1')
          end
          if #cut_starts() > 0 then requeued = true; break end
        end
        sh('sleep 0.2')
      end
      local cuts = cut_starts()
      t.ok(requeued and #cuts == 1, 'task 1 requeued from outside while it runs, as a preemption would: start ' ..
           table.concat(cuts, ', ') .. ' cut short')
      local tasks, why = slurm.wait(id, 240, 1)
      t.ok(tasks ~= nil, string.format('the array ended, %d s after the cluster started%s', os.time() - t0,
                                       why and ': ' .. why or ''))
      tasks = tasks or {}
      for _, r in ipairs(s.runs) do
        local st = suite.state(r)
        local seen = {}
        for line in (read(r.dir .. '/metrics.jsonl') or ''):gmatch('[^\n]+') do
          local e = json.decode(line).epoch
          seen[#seen + 1] = e
        end
        local once = #seen == epochs
        for i = 1, epochs do once = once and seen[i] == i end
        t.ok(st.state == 'done' and once, string.format('run %d (%s) is done with epochs 1..%d in metrics.jsonl ' ..
                                                        'once ' ..
             'each: %s, epochs %s', r.index, r.id, epochs, st.state, table.concat(seen, ',')))
        -- one requeue per stopped epoch, and task 1 once more (the preemption)
        local extra = r.index == 1 and #cuts or 0
        local task = tasks[r.index] or {}
        t.ok(task.state == 'COMPLETED' and task.restarts == epochs - 1 + extra,
             string.format('array task %d completed after %d requeues: %s, restarts %s', r.index,
                           epochs - 1 + extra, tostring(task.state), tostring(task.restarts)))
        local log = read(string.format('%s/slurm-logs/crlab-%s_%s_%d.out', suite_out, s.name, id, r.index)) or ''
        local _, starts = log:gsub('crlab: task %d+_%d+, start %d+', '')
        local _, requeues = log:gsub('stopped early with epochs left', '')
        t.ok(starts == epochs + extra and requeues == epochs - 1,
             string.format('task %d\'s log (appended across restarts) shows %d starts and %d requeues by the task: ' ..
                           '%d, %d', r.index, epochs + extra, epochs - 1, starts, requeues))
      end
      -- submitted again, for one task only: its run is done, so it ends at once
      local again = slurm.submit(suite_out .. '/slurm.sh', {'--array=2'})
      local t1 = os.time()
      tasks, why = slurm.wait(again, 60, 1)
      local only2 = tasks and next(tasks) == 2 and next(tasks, 2) == nil
      local log = read(string.format('%s/slurm-logs/crlab-%s_%s_2.out', suite_out, s.name, again)) or ''
      t.ok(only2 and tasks[2].state == 'COMPLETED' and tasks[2].restarts == 0 and
           log:find(s.runs[2].id .. ': done', 1, true) and not log:find('starting', 1, true),
           string.format('sbatch --array=2 again: only task 2 ran, found its run done and ended (%d s): %s',
                         os.time() - t1, (why or log):gsub('\n', ' | ')))
      local lines = select(2, (read(s.runs[2].dir .. '/metrics.jsonl') or ''):gsub('\n', ''))
      t.eq(lines, epochs, 'the done run kept its ' .. epochs .. ' epochs')
    end)
    if not ok then t.ok(false, 'the Slurm run raised: ' .. tostring(err)) end
    local pids = {}
    for _, f in ipairs{'/slurmctld.pid', '/slurmd.pid', '/munge/munged.pid', '/watchdog.pid'} do
      pids[#pids + 1] = (read(cluster .. f) or ''):match('%d+')
    end
    out, rc = sh(q(root .. '/tests/slurm/stop.sh') .. ' ' .. q(cluster))
    local alive = {}
    for _, p in ipairs(pids) do
      -- a zombie waiting for PID 1 to reap it is not running
      local state = (read('/proc/' .. p .. '/stat') or ''):match('%) (%a)')
      if state and state ~= 'Z' then alive[#alive + 1] = p end
    end
    t.ok(rc == 0 and #pids == 4 and #alive == 0,
         'tests/slurm/stop.sh leaves no daemon or watchdog running (' .. #pids .. ' pids, alive: ' ..
         table.concat(alive, ' ') .. ') ' .. out:gsub('\n', ' | '))
    t.diag(string.format('real Slurm part: %d s', os.time() - t0))
  end
end

os.execute('rm -rf ' .. q(scratch))
t.done()
