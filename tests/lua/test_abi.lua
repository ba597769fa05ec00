-- The struct layouts LuaJIT's FFI computes from crlab_api.h must equal the
-- C compiler's (printed by the abi_dump program), field by field.
local t = require 'tap'
local ffi = require 'ffi'
require 'crlab'

local dump = (os.getenv('CRLAB_BUILD') or 'core/build') .. '/tests/abi_dump'
local p = io.popen(dump)
local lines = p:read('*a')
p:close()
local checked = 0
for name, field, value in lines:gmatch('([%w_]+)%.?([%w_]*) (%d+)') do
  value = tonumber(value)
  if field == '' then
    t.eq(ffi.sizeof(name), value, 'sizeof(' .. name .. ') is ' .. value .. ' in C and in the FFI')
  else
    t.eq(ffi.offsetof(name, field), value, 'offsetof(' .. name .. ', ' .. field .. ') is ' .. value)
  end
  checked = checked + 1
end
t.ok(checked >= 20, 'abi_dump reported ' .. checked .. ' sizes and offsets')

-- Every struct the header declares is in the dump.
local header = io.open((os.getenv('CRLAB_HOME') or '.') .. '/core/crlab_api.h'):read('*a')
for name in header:gmatch('typedef struct ([%w_]+) {') do
  t.ok(lines:find('\n' .. name .. ' ') or lines:find('^' .. name .. ' '),
       'abi_dump covers struct ' .. name)
end
t.done()
