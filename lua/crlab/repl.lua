-- crlab.repl: the interactive prompt of the `crlab` command, in the manner
-- of Torch7's th: results are printed (tensors pretty-printed), an
-- incomplete statement continues on the next line, an error prints its
-- message and a short traceback and the prompt carries on. Line editing and
-- history come from GNU readline through the FFI when the library is there
-- (history in ~/.crlab_history); otherwise lines are read plainly.
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

-- stdout is flushed before anything goes to stderr so that, piped, the
-- two streams keep the order in which things happened.
local function run(fn)
  local res = {xpcall(fn, M.traceback)}
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

function M.start()
  local tty = is_tty()
  local history = (os.getenv('HOME') or '.') .. '/.crlab_history'
  local read
  if tty and rl then
    rl.rl_inhibit_completion = 1
    rl.read_history(history)
    read = function(prompt)
      local p = rl.readline(prompt)
      if p == nil then return nil end
      local s = ffi.string(p)
      ffi.C.free(p)
      return s
    end
  else
    read = function(prompt)
      if tty then io.write(prompt) io.flush() end
      return io.read('*l')
    end
  end
  if tty then
    local crlab = require 'crlab'
    print(string.format('crlab %s  |  LuaJIT %s  |  CUDA: %s', crlab._VERSION, jit.version,
                        crlab.cuda.available() and (crlab.cuda.deviceCount() .. ' device(s)') or
                        (crlab.cuda.compiled() and 'no device' or 'not built')))
    print("'crlab' is loaded. Try: crlab.loss.crl{alpha=1.5}:forward(crlab.randn(4, 10), {0, 1, 2, 3})")
    print('Ctrl-D or os.exit() to leave.')
  end
  while true do
    local line = read('> ')
    if line == nil then
      if tty then io.write('\n') end
      break
    end
    local src = line
    local fn, err = compile(src)
    while not fn and incomplete(err) do
      local more = read('>> ')
      if more == nil then break end
      src = src .. '\n' .. more
      fn, err = compile(src)
    end
    if src:find('%S') then
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
end

return M
