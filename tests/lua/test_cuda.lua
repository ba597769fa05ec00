-- The CUDA part of the core as it stands: device memory, copies between
-- host and device, the device query. On a machine without a GPU (or a build
-- without CUDA) it checks that asking for one fails with a clear message.
local t = require 'tap'
local crlab = require 'crlab'

if not crlab.cuda.available() then
  t.ok(not crlab.cuda.available() and crlab.cuda.deviceCount() == 0, 'no CUDA device here')
  -- built without CUDA, or the plugin cannot load (no cuDNN), or no device
  local _, why = pcall(function() return crlab.zeros(2, 2):cuda() end)
  why = tostring(why)
  t.ok(why:find('no CUDA device is available', 1, true) or why:find('built without CUDA', 1, true) or
       why:find('CUDA backend could not be loaded', 1, true), ':cuda() without a device says why: ' .. why)
  t.errors(function() crlab.cuda.synchronize() end, 'crl_cuda_synchronize', 'synchronize without a device')
  t.errors(function() crlab.cuda.memory() end, 'crl_cuda_memory', 'memory() without a device')
  t.errors(function() crlab.cuda.setDevice(0) end, 'crl_cuda_set_device', 'setDevice(0) without a device')
  if crlab.cuda.compiled() and not why:find('could not be loaded', 1, true) then
    -- the switches live in the plugin, which loads here without a device
    t.eq(crlab.cuda.allowTF32(), true, 'TF32 is allowed by default, as in PyTorch')
    crlab.cuda.allowTF32(false)
    t.eq(crlab.cuda.allowTF32(), false, 'allowTF32(false) switches it off')
    crlab.cuda.allowTF32(true)
    t.eq(crlab.cuda.deterministic(), false, 'deterministic is off by default')
    t.eq(crlab.cuda.benchmark(), false, 'benchmark is off by default')
    t.errors(function() crlab.cuda.deterministic(1) end, 'expects true or false', 'a switch takes a boolean')
    t.errors(function() crlab.cuda.setWorkspaceLimit(-1) end, 'setWorkspaceLimit', 'workspace limit must be >= 0')
    crlab.cuda.setWorkspaceLimit(256)
    t.eq(crlab.C.crl_cuda_get_option(crlab.C.CRL_CUDA_WORKSPACE_MB), 256, 'setWorkspaceLimit(256) sets the limit')
    t.errors(function() local core = require 'crlab.core'; core.check(core.C.crl_cuda_set_option(9, 1)) end, 'unknown option 9',
             'an unknown option is refused')
  else
    t.skip('the switches need the CUDA plugin')
  end
  local data, T = require 'crlab.data', require 'crlab.transforms'
  local split = {images = crlab.zeros({8, 1, 4, 4}, 'uint8'), labels = crlab.zeros({8}, 'int32')}
  local L = data.loader(split, {batch = 4, transform = T.compose{}, threads = 1})
  local _, xb = L:epoch()()
  t.eq(xb.storage.owns_data, 1, 'without a GPU, loader batches live in ordinary memory')
  L:close()
  for _, what in ipairs{'host<->device round trips', 'device-side copies and fills', 'the caching allocator',
                        'out-of-memory message', 'page-locked loader batches'} do
    t.skip(what .. ': needs a CUDA device')
  end
  t.done()
end

local ffi = require 'ffi'
local name = ffi.new('char[256]')
local total = ffi.new('int64_t[1]')
crlab.C.crl_cuda_device_info(name, 256, total, 0)
t.ok(total[0] > 0, 'device 0: ' .. ffi.string(name) .. ', ' .. tonumber(total[0]) / 2^30 .. ' GiB')

crlab.manualSeed(3)
local x = crlab.randn(37, 129)
local g = x:cuda()
t.eq(g:type(), 'crlab.CudaFloatTensor', ':cuda() makes a CUDA tensor')
t.eq((g:float() - x):abs():max(), 0, 'float32 host -> device -> host is exact')
local xt = x:t()
t.eq((xt:cuda():float() - xt):abs():max(), 0, 'a transposed (non-contiguous) host tensor uploads in order')
local labels = crlab.tensor({0, 5, 9, 2}, 'int32')
t.eq(labels:cuda():cpu():eq(labels):sum(), 4, 'int32 round trip')
local bytes = crlab.tensor({0, 128, 255}, 'uint8')
t.eq(bytes:cuda():cpu():int():sum(), 383, 'uint8 round trip')
t.eq(g[3][5], x[3][5], 'indexing a CUDA tensor reads one element back')
g[1][1] = 42
t.eq(g:float()[1][1], 42, 'assigning into a CUDA tensor writes one element')
local d2d = crlab.zeros(37, 129):cuda()
d2d:copy(g)
t.eq(d2d:float():sum(), g:float():sum(), 'device -> device copy')
t.ok(tostring(g:narrow(1, 1, 2)):find('[crlab.CudaFloatTensor of size 2x129]', 1, true),
     'a CUDA tensor prints through a host copy')
t.eq(((g + 1):float() - (g:float() + 1)):abs():max(), 0, 'arithmetic on CUDA tensors runs on the device')
-- copies and fills on the device: strided views, dtype conversion
t.eq((g:t():contiguous():float() - x:t()):abs():max(), 0, 'a transposed CUDA view made contiguous on the device')
local h = crlab.zeros(129, 37):cuda()
h:copy(g:t())
t.eq((h:float() - x:t()):abs():max(), 0, 'copy from a transposed CUDA view into a CUDA tensor')
local gi = crlab.zeros(37, 129, 'int32'):cuda()
gi:copy(g * 10)
t.eq((gi:cpu():float() - crlab.zeros(37, 129, 'int32'):copy(x * 10):float()):abs():max(), 0,
     'float -> int32 on the device truncates like the CPU')
local f = crlab.zeros(6, 8):cuda()
f:narrow(2, 3, 4):fill(2.5)
t.eq(f:float():sum(), 6 * 4 * 2.5, 'fill of a strided CUDA view touches only the view')
f:zero()
t.eq(f:float():abs():sum(), 0, 'zero() on the device')
-- the caching allocator: a freed block serves the next tensor of its size
collectgarbage(); collectgarbage()
crlab.cuda.synchronize()
local m0 = crlab.cuda.memory()
t.ok(m0.device_total > 0 and m0.reserved >= m0.allocated, 'memory(): reserved >= allocated, device total known')
for _ = 1, 20 do
  local a = crlab.zeros(1000, 1000):cuda()
  a = nil
  collectgarbage()
end
local m1 = crlab.cuda.memory()
t.ok(m1.device_mallocs - m0.device_mallocs <= 1, '20 tensors of one size made and dropped: at most one cudaMalloc (' ..
     (m1.device_mallocs - m0.device_mallocs) .. ')')
t.ok(m1.requests - m0.requests >= 20, 'and 20 requests served')
crlab.cuda.emptyCache()
t.ok(crlab.cuda.memory().reserved <= m1.reserved, 'emptyCache gives cached blocks back')
local ok, err = pcall(function() -- 1 TiB, made on the device directly
  local core = require 'crlab.core'
  return require('crlab.tensor').new(core.C.CRL_FLOAT32, core.C.CRL_CUDA, {2^38})
end)
t.ok(not ok and tostring(err):find('out of memory', 1, true) and tostring(err):find('asked for', 1, true),
     'out of memory names the size asked for: ' .. tostring(err))
t.errors(function() crlab.cuda.setDevice(crlab.cuda.deviceCount()) end, 'no CUDA device', 'setDevice past the last device')
-- the loader's batch buffers are page-locked when a GPU is present
local data, T = require 'crlab.data', require 'crlab.transforms'
local split = {images = crlab.zeros({8, 1, 4, 4}, 'uint8'), labels = crlab.zeros({8}, 'int32')}
local L = data.loader(split, {batch = 4, transform = T.compose{}, threads = 1})
local _, xb = L:epoch()()
t.eq(xb.storage.owns_data, 2, 'loader batches live in page-locked memory')
t.eq((xb:cuda():float() - xb):abs():max(), 0, 'and copy to the GPU')
L:close()
t.eq(crlab.C.crl_cuda_synchronize(), 0, 'synchronize')
t.done()
