-- crlab.core: loads libcrlab and its header through the LuaJIT FFI.
-- The header core/crlab_api.h is plain declarations and is handed to
-- ffi.cdef verbatim; nothing here parses C. check(rc) is the one place
-- where a C status becomes a Lua error carrying the C message.
local ffi = require 'ffi'

local M = {}

local here = debug.getinfo(1, 'S').source:match('^@(.*)/crlab/core%.lua$') or 'lua'
M.root = os.getenv('CRLAB_HOME') or (here .. '/..')

-- A file's bytes, or nil when it cannot be opened.
local function read_file(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end
M.readFile = read_file

-- Writes text to path through path.tmp and a rename (chmod'ed to mode
-- first when given, e.g. '755'), so an interruption or a full disk leaves
-- the old file or the new one, never a part. Returns nil and the reason on
-- failure (the write, the flush at close, the chmod or the rename), with
-- nothing left behind.
function M.replaceFile(path, text, mode)
  local tmp = path .. '.tmp'
  local f, err = io.open(tmp, 'w')
  if not f then return nil, 'cannot write ' .. tmp .. ': ' .. tostring(err) end
  local ok, why = f:write(text)
  local closed, cerr = f:close() -- the buffer goes out here: a full disk may show only now
  if ok and not closed then ok, why = nil, cerr end
  if ok and mode then
    local r = os.execute("chmod " .. mode .. " '" .. tmp:gsub("'", "'\\''") .. "'")
    if r ~= 0 and r ~= true then ok, why = nil, 'chmod ' .. mode .. ' failed' end
  end
  if ok then ok, why = os.rename(tmp, path) end
  if not ok then
    os.remove(tmp)
    return nil, 'cannot write ' .. path .. ': ' .. tostring(why)
  end
  return true
end

-- mkdir -p dir; nil and a reason on failure.
function M.mkdirs(dir)
  local r = os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  if r ~= 0 and r ~= true then return nil, 'cannot create the folder ' .. dir end
  return true
end

local header_path = M.root .. '/core/crlab_api.h'
local header = read_file(header_path)
if not header then
  error('crlab: cannot read the C header ' .. header_path ..
        ' (set CRLAB_HOME to the crlab checkout)', 0)
end
ffi.cdef(header)

local lib_path = os.getenv('CRLAB_LIB') or (M.root .. '/core/build/libcrlab.so')
local ok, lib = pcall(ffi.load, lib_path)
if not ok then
  error('crlab: cannot load ' .. lib_path .. ' (run `make` in the crlab checkout first): ' ..
        tostring(lib), 0)
end
M.C = lib
M.lib_path = lib_path

local C = lib

function M.last_error()
  return ffi.string(C.crl_last_error())
end

-- The stack level of the first caller outside lua/crlab/, so an error
-- points at the user's line rather than at the binding.
function M.user_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, 'S')
    if info == nil then return 1 end
    if not info.source:find('crlab/[%w_]+%.lua$') then return level - 1 end
    level = level + 1
  end
end

-- Raises the C library's message as a Lua error, once, here.
function M.check(rc)
  if rc ~= 0 then error(ffi.string(C.crl_last_error()), M.user_level()) end
end

return M
