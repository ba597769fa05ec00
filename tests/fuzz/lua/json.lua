-- crlab.json.decode on any bytes (the checkpoint header is decoded by it).
local json = require 'crlab.json'
return {run = function(data) json.decode(data) end}
