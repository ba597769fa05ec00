-- The CUDA part of the core as it stands: device memory, copies between
-- host and device, the device query. On a machine without a GPU (or a build
-- without CUDA) it checks that asking for one fails with a clear message.
local t = require 'tap'
local crlab = require 'crlab'

if not crlab.cuda.available() then
  t.ok(not crlab.cuda.available() and crlab.cuda.deviceCount() == 0, 'no CUDA device here')
  local expect = crlab.cuda.compiled() and 'no CUDA device is available' or 'built without CUDA'
  t.errors(function() return crlab.zeros(2, 2):cuda() end, expect, ':cuda() without a device')
  t.errors(function() crlab.cuda.synchronize() end, expect:sub(1, 8), 'synchronize without a device')
  local data, T = require 'crlab.data', require 'crlab.transforms'
  local split = {images = crlab.zeros({8, 1, 4, 4}, 'uint8'), labels = crlab.zeros({8}, 'int32')}
  local L = data.loader(split, {batch = 4, transform = T.compose{}, threads = 1})
  local _, xb = L:epoch()()
  t.eq(xb.storage.owns_data, 1, 'without a GPU, loader batches live in ordinary memory')
  L:close()
  t.skip('host<->device round trips need a GPU')
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
