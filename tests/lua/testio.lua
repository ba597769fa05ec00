-- testio: the file and shell helpers the Lua tests share.
--   local tio = require 'testio'
--   tio.q(s)                  -- s quoted for sh
--   out, rc = tio.sh(cmd)     -- stdout and stderr together, and the exit status (stdin from /dev/null)
--   tio.read(path)            -- the file's bytes, or nil
--   tio.write(path, text[, mode])   -- mode: for chmod, e.g. '755'
local M = {}

function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.sh(cmd)
  local p = io.popen('( ' .. cmd .. ' ) </dev/null 2>&1; echo "rc=$?"')
  local out = p:read('*a')
  p:close()
  local rc = tonumber(out:match('rc=(%d+)\n$'))
  return out:gsub('rc=%d+\n$', ''), rc
end

M.read = require('crlab.core').readFile

function M.write(path, text, mode)
  local f = assert(io.open(path, 'wb'))
  assert(f:write(text))
  assert(f:close())
  if mode then assert(os.execute('chmod ' .. mode .. ' ' .. M.q(path)) == 0) end
end

return M
