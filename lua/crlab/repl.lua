-- crlab.repl: the interactive prompt of the `crlab` command, in the manner
-- of Torch7's th: results are printed (tensors pretty-printed), an
-- incomplete statement continues on the next line, an error prints its
-- message and a short traceback and the prompt carries on. Line editing and
-- history come from GNU readline through the FFI when the library is there
-- (history in ~/.crlab_history); otherwise lines are read plainly.
--
-- Ctrl-C cancels the line being typed (a statement being continued
-- included) or interrupts the running statement, every time; the session
-- goes on. The SIGINT handler (in the core) only notes the signal; a count
-- hook takes the note between Lua instructions, so a statement stops at its
-- next Lua instruction (a long C call ends first). Compiled code runs no
-- hooks, so the prompt turns the JIT compiler off while it runs (scripts
-- run compiled); `jit.on()` typed at the prompt turns it back on, and then
-- a compiled loop may ignore Ctrl-C.
local ffi = require 'ffi'

local M = {}

local rl
do
  local ok = pcall(ffi.cdef, [[
    char *readline(const char *prompt);
    void add_history(const char *line);
    int read_history(const char *filename);
    int write_history(const char *filename);
    extern int rl_inhibit_completion;
    extern int rl_catch_signals;
    extern int rl_point;
    extern int rl_end;
    extern int (*rl_getc_function)(void *);
    void free(void *ptr);
  ]])
  if ok then
    for _, name in ipairs({'readline', 'libreadline.so.8', 'libreadline.so.7'}) do
      local loaded, lib = pcall(ffi.load, name)
      if loaded then rl = lib break end
    end
  end
end

local function is_tty()
  local ok, r = pcall(function()
    ffi.cdef('int isatty(int fd);')
  end)
  local _ = ok, r
  return ffi.C.isatty(0) == 1 and ffi.C.isatty(1) == 1
end

-- Pretty printer for results: tensors through their __tostring, tables as
-- a short listing, everything else with tostring.
local function show(v, depth, seen)
  depth = depth or 0
  seen = seen or {}
  if type(v) == 'string' then return string.format('%q', v) end
  if type(v) ~= 'table' then return tostring(v) end
  local m = getmetatable(v)
  if m and m.__tostring then return tostring(v) end
  if seen[v] then return '<cycle>' end
  seen[v] = true
  if depth >= 2 then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == 'number' or type(a) == 'string') then return a < b end
    return type(a) < type(b)
  end)
  local lines = {}
  local indent = string.rep('  ', depth + 1)
  for i, k in ipairs(keys) do
    if i > 50 then
      lines[#lines + 1] = indent .. '... (' .. (#keys - 50) .. ' more)'
      break
    end
    local key = type(k) == 'string' and k:match('^[%a_][%w_]*$') and k or '[' .. show(k, 2) .. ']'
    lines[#lines + 1] = indent .. key .. ' : ' .. show(v[k], depth + 1, seen):gsub('\n', '\n' .. indent)
  end
  if #lines == 0 then return '{}' end
  return '{\n' .. table.concat(lines, '\n') .. '\n' .. string.rep('  ', depth) .. '}'
end
M.show = show

-- A message plus the part of the traceback that is the user's code. The
-- message is kept whole, whatever it contains (a message raised inside
-- the binding begins with a lua/crlab/*.lua location); only the frames
-- below the traceback header are filtered.
function M.traceback(msg)
  local tb = debug.traceback('', 2)
  local out = {}
  for line in tb:gmatch('[^\n]+') do
    if line == 'stack traceback:' or line:find('lua/crlab/[%w_/]+%.lua') or line:find("in function 'xpcall'")
       or line:find('%[C%]: in function .error.') or line:find('%[C%]: at 0x') or line:find('%[builtin#') then
      -- the header is added back below; the prompt's own frames say nothing to the user
    else
      out[#out + 1] = line
    end
    if #out >= 8 then break end
  end
  local text = tostring(msg)
  -- a message located inside the binding is relocated to the user's line
  local user_loc = out[1] and out[1]:match('^%s*(.-:%d+):')
  local rest = text:match('^[^\n]-lua/crlab/[%w_/]+%.lua:%d+: (.*)$')
  if user_loc and rest then text = user_loc .. ': ' .. rest end
  -- nothing of the user's left: no empty header
  if #out == 0 then return text end
  return text .. '\nstack traceback:\n' .. table.concat(out, '\n')
end

local function incomplete(err)
  return err and err:find("'<eof>'$") ~= nil
end

-- Compiles a chunk, trying `return <chunk>` first so expressions print.
local function compile(src)
  local expr = src:gsub('^%s*=', '')
  local fn = loadstring('return ' .. expr, '=stdin')
  if fn then return fn end
  return loadstring(src, '=stdin')
end

local C -- the core's functions, once the prompt starts

-- Called every HOOK_COUNT instructions while a statement runs.
local HOOK_COUNT = 10000
local function on_count()
  if C.crl_interrupt_take() == 1 then error('interrupted (Ctrl-C)', 2) end
end

-- stdout is flushed before anything goes to stderr so that, piped, the
-- two streams keep the order in which things happened.
local function run(fn)
  debug.sethook(on_count, '', HOOK_COUNT)
  local res = {xpcall(fn, M.traceback)}
  debug.sethook()
  io.stdout:flush()
  if not res[1] then
    io.stderr:write(tostring(res[2]), '\n')
    return
  end
  local n = select('#', unpack(res)) - 1
  if n > 0 then
    local parts = {}
    for i = 2, n + 1 do parts[#parts + 1] = show(res[i]) end
    print(table.concat(parts, '\t'))
    io.stdout:flush()
  end
end

local libc_ok = pcall(ffi.cdef, [[
  struct _IO_FILE;
  extern struct _IO_FILE *stdin;
  void clearerr(struct _IO_FILE *stream);
  long read(int fd, void *buf, size_t count);
]])
local EINTR = 4

function M.start()
  C = require('crlab.core').C
  local tty = is_tty()
  local history = (os.getenv('HOME') or '.') .. '/.crlab_history'
  local jit_was_on = jit.status()
  jit.off()
  jit.flush()
  local read, getc, getc_before
  if tty and rl and libc_ok then
    rl.rl_inhibit_completion = 1
    rl.read_history(history)
    -- readline reads through this, so that Ctrl-C (EINTR, readline's own
    -- handlers off) ends the line: an empty line at EOF returns NULL
    local byte, cancelled = ffi.new('unsigned char[1]'), false
    getc = ffi.cast('int (*)(void *)', function()
      while not cancelled do
        if C.crl_interrupt_take() == 1 then
          cancelled = true
        else
          local n = ffi.C.read(0, byte, 1)
          if n == 1 then return byte[0] end
          if n == 0 or ffi.errno() ~= EINTR then return -1 end
        end
      end
      rl.rl_point, rl.rl_end = 0, 0
      return -1
    end)
    getc_before = rl.rl_getc_function
    rl.rl_getc_function = getc
    rl.rl_catch_signals = 0
    read = function(prompt)
      cancelled = false
      local p = rl.readline(prompt)
      local s = p ~= nil and ffi.string(p) or nil
      if p ~= nil then ffi.C.free(p) end
      if cancelled then
        io.write('^C\n')
        return nil, true
      end
      return s
    end
    -- a callback must not be entered from compiled code: never compile the caller
    jit.off(read)
  else
    read = function(prompt)
      if tty then io.write(prompt) io.flush() end
      local s = io.read('*l')
      if C.crl_interrupt_take() == 1 then
        if libc_ok then ffi.C.clearerr(ffi.C.stdin) end -- the EINTR left stdin's error flag set
        if tty then io.write('\n') end
        return nil, true
      end
      return s
    end
  end
  if tty then
    local crlab = require 'crlab'
    print(string.format('crlab %s  |  LuaJIT %s  |  CUDA: %s', crlab._VERSION, jit.version,
                        crlab.cuda.available() and (crlab.cuda.deviceCount() .. ' device(s)') or
                        (crlab.cuda.compiled() and 'no device' or 'not built')))
    print("'crlab' is loaded. Try: crlab.loss.crl{alpha=1.5}:forward(crlab.randn(4, 10), {0, 1, 2, 3})")
    print('Ctrl-D or os.exit() to leave; Ctrl-C cancels the line or stops the statement.')
  end
  require('crlab.core').check(C.crl_interrupt_arm())
  while true do
    C.crl_interrupt_take() -- a Ctrl-C that came after the last statement ended
    local line, cancel = read('> ')
    if line == nil and not cancel then
      if tty then io.write('\n') end
      break
    end
    local src = line or ''
    local fn, err = compile(src)
    while not cancel and not fn and incomplete(err) do
      local more
      more, cancel = read('>> ')
      if more == nil then break end
      src = src .. '\n' .. more
      fn, err = compile(src)
    end
    if not cancel and src:find('%S') then
      if tty and rl then
        rl.add_history(src)
        rl.write_history(history)
      end
      if fn then
        run(fn)
      else
        io.stdout:flush()
        io.stderr:write(tostring(err), '\n')
      end
    end
  end
  C.crl_interrupt_disarm()
  if getc then
    rl.rl_getc_function = getc_before
    getc:free()
  end
  if jit_was_on then jit.on() end
end

return M
