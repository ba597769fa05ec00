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
