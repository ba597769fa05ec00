-- crlab.checkpoint: the safetensors header (length, JSON, __metadata__),
-- the tensor entries and the CRC-32s, through metadata() and load().
local checkpoint = require 'crlab.checkpoint'
return {
  run = function(data, dir)
    local path = dir .. '/model.safetensors'
    local f = assert(io.open(path, 'wb'))
    f:write(data)
    f:close()
    local ok1, e1 = pcall(checkpoint.metadata, path)
    local ok2, e2 = pcall(checkpoint.load, path)
    if not (ok1 and ok2) then error((ok1 and '' or tostring(e1) .. '\n') .. (ok2 and '' or tostring(e2)), 0) end
  end,
}
