-- C memory and the Lua collector: the live storage bytes seen from Lua,
-- and a loop that makes a new 4 MiB tensor per iteration staying flat
-- without any collectgarbage() of its own (the binding collects when C
-- storage has grown past its allowance); the loop stays JIT-compiled.
local t = require 'tap'
local crlab = require 'crlab'
local T = require 'crlab.tensor'
local C = crlab.C

local function live() return tonumber(C.crl_storage_live_bytes(C.CRL_CPU)) end

-- the counter from Lua
collectgarbage()
local before = live()
local x = crlab.zeros(1000)
t.eq(live() - before, 4032, 'a 1000-float tensor holds 4032 bytes of C storage (rounded to 64)')
local v = x:narrow(1, 1, 10)
t.eq(live() - before, 4032, 'a view holds no more')
x, v = nil, nil
collectgarbage()
t.eq(live(), before, 'collecting both gives the bytes back')

-- 200 iterations of a 4 MiB result: 800 MiB made in all; without the
-- collector's help most of it would still be resident at the end
local a = crlab.randn(1024 * 1024)
collectgarbage()
local rss0 = tonumber(C.crl_rss_bytes())
local collections = T.gc.collections
local peak, peak_live = 0, 0
local function loop()
  for _ = 1, 200 do
    local b = a + 1
    local r = tonumber(C.crl_rss_bytes())
    if r > peak then peak = r end
    local l = live()
    if l > peak_live then peak_live = l end
  end
end
loop()
local bound = 512 * 2^20 -- the default allowance is 256 MiB; without it the loop grows by ~800 MiB
if os.getenv('CRLAB_ASAN') then
  t.skip('AddressSanitizer keeps freed memory resident in its quarantine; the live bytes below still count')
else
  t.ok(peak - rss0 < bound, string.format('200 new 4 MiB tensors: resident memory grew by at most %.0f MiB ' ..
       '(bound %.0f MiB, from %.0f MiB)', (peak - rss0) / 2^20, bound / 2^20, rss0 / 2^20))
end
t.ok(peak_live - before < 320 * 2^20, string.format('live C storage peaked %.0f MiB above the start',
     (peak_live - before) / 2^20))
t.ok(T.gc.collections > collections, string.format('the binding ran %d collections on its own',
     T.gc.collections - collections))

-- the check on the hot path keeps a loop of small tensor ops compiled
if jit and jit.status() then
  local compiled = false
  local small = crlab.randn(16)
  local line
  jit.attach(function(what, _, func)
    if what == 'stop' and line and require('jit.util').funcinfo(func).linedefined == line then compiled = true end
  end, 'trace')
  local function hot()
    local s = 0
    for _ = 1, 1000 do s = s + (small + 1)[1] end
    return s
  end
  line = debug.getinfo(hot, 'S').linedefined
  hot()
  jit.attach(function() end)
  t.ok(compiled, 'a loop of small tensor ops (with the storage check) compiles to a trace')
else
  t.skip('the JIT is off')
end

-- the allowance can be set; a smaller one collects sooner
collectgarbage()
T.setGCStep(16 * 2^20)
collections = T.gc.collections
for _ = 1, 20 do local b = a * 2 end
t.ok(T.gc.collections - collections >= 3, string.format('with a 16 MiB allowance, 20 x 4 MiB made -> %d ' ..
     'collections', T.gc.collections - collections))
T.setGCStep(256 * 2^20)
t.done()
