-- crlab: require 'crlab' gives the tensor constructors, the losses and the
-- generator controls in one table, as torch does.
local core = require 'crlab.core'
local T = require 'crlab.tensor'

local crlab = {
  _VERSION = '0.1.0',
  C = core.C,
  Tensor = T.Tensor,
  isTensor = T.isTensor,
  tensor = T.tensor,
  zeros = T.zeros, ones = T.ones, empty = T.empty,
  rand = T.rand, randn = T.randn, arange = T.arange, randperm = T.randperm,
  manualSeed = T.manualSeed, getRNGState = T.getRNGState, setRNGState = T.setRNGState,
}

crlab.loss = require 'crlab.loss'
crlab.plot = require 'crlab.plot'

function crlab.mm(a, b) return a:mm(b) end

-- CUDA: crlab.cuda.available() is false on machines without a GPU (or
-- when the CUDA backend, libcrlab_cuda.so, cannot be loaded), and t:cuda()
-- then raises an error that says why.
local function cudaFlag(opt, name)
  return function(on)
    if on == nil then
      local v = core.C.crl_cuda_get_option(opt)
      if v < 0 then core.check(-1) end
      return v == 1
    end
    if type(on) ~= 'boolean' then error('crlab.cuda.' .. name .. ': expects true or false, got ' .. tostring(on), 2) end
    core.check(core.C.crl_cuda_set_option(opt, on and 1 or 0))
  end
end
crlab.cuda = {
  compiled = function() return core.C.crl_cuda_compiled() == 1 end,
  deviceCount = function() return core.C.crl_cuda_device_count() end,
  available = function() return core.C.crl_cuda_device_count() > 0 end,
  synchronize = function() core.check(core.C.crl_cuda_synchronize()) end,
  -- the device that new CUDA tensors go to (0-based, as in cutorch's 1-based setDevice minus one)
  setDevice = function(i) core.check(core.C.crl_cuda_set_device(i)) end,
  getDevice = function() return core.C.crl_cuda_get_device() end,
  -- the caching allocator's figures, in bytes
  memory = function()
    local s = require('ffi').new('crl_cuda_memory_stats')
    core.check(core.C.crl_cuda_memory(s))
    local t = {}
    for _, k in ipairs{'allocated', 'reserved', 'peak_allocated', 'device_mallocs', 'device_frees', 'requests',
                       'device_total', 'device_free'} do t[k] = tonumber(s[k]) end
    return t
  end,
  emptyCache = function() core.check(core.C.crl_cuda_empty_cache()) end,
  -- the name of a device (0-based; default the current one) and its memory in bytes
  deviceName = function(i)
    local ffi = require 'ffi'
    local name, total = ffi.new('char[256]'), ffi.new('int64_t[1]')
    core.check(core.C.crl_cuda_device_info(name, 256, total, i or math.max(0, core.C.crl_cuda_get_device())))
    return ffi.string(name), tonumber(total[0])
  end,
  -- switches: with no argument each returns its state
  allowTF32 = cudaFlag(core.C.CRL_CUDA_TF32, 'allowTF32'),         -- TF32 tensor cores for fp32 conv/GEMM (default true)
  deterministic = cudaFlag(core.C.CRL_CUDA_DETERMINISTIC, 'deterministic'), -- deterministic cuDNN algorithms only (default false)
  benchmark = cudaFlag(core.C.CRL_CUDA_BENCHMARK, 'benchmark'),         -- time conv algorithms once per shape (default false)
  -- bf16 mixed precision (default false): convolutions and GEMMs round their operands to bfloat16 and
  -- run on tensor cores, accumulating in float32; every tensor (weights, activations, gradients) stays float32
  bf16 = cudaFlag(core.C.CRL_CUDA_BF16, 'bf16'),
}
function crlab.cuda.setWorkspaceLimit(mb)
  if type(mb) ~= 'number' or mb < 0 or mb % 1 ~= 0 then
    error('crlab.cuda.setWorkspaceLimit: expects a whole number of MiB >= 0, got ' .. tostring(mb), 2)
  end
  core.check(core.C.crl_cuda_set_option(core.C.CRL_CUDA_WORKSPACE_MB, mb))
end

-- CUDA graphs: local g = crlab.cuda.graph(fn) captures the GPU work of
-- fn() (it is queued, not run) and g:replay() runs all of it again with one
-- launch, on the same tensors; g:free() (or the garbage collector) frees it.
-- fn's Lua code runs once, at the capture: what it computes on the host
-- (a learning rate, a generator offset) is fixed in the graph. During the
-- capture nothing may allocate device memory the cache does not already
-- hold (run fn once eagerly first), read back to the host, or copy from
-- it; each fails with a message saying so, and the stream stays usable.
-- crlab.cuda.graph(fn, 'cpu') is the stand-in for CPU tensors: replay()
-- calls fn(), so one loop runs on either device.
local Graph = {}
Graph.__index = Graph

function Graph:replay()
  if self.fn then
    self.fn()
  elseif self.handle ~= nil then
    core.check(core.C.crl_cuda_graph_replay(self.handle))
  else
    error('crlab.cuda.graph: replay of a freed graph', 2)
  end
  return self
end

function Graph:free()
  if self.handle ~= nil then
    core.C.crl_cuda_graph_free(require('ffi').gc(self.handle, nil))
    self.handle = nil
  end
  self.fn = nil
end

function Graph:__tostring()
  return 'crlab.cuda.graph(' .. self.device .. (self.fn == nil and self.handle == nil and ', freed)' or ')')
end

local function graph(fn, device)
  if type(fn) ~= 'function' then error('crlab.cuda.graph: expects a function, got ' .. type(fn), 2) end
  device = device or 'cuda'
  if device ~= 'cuda' and device ~= 'cpu' then
    error("crlab.cuda.graph: device 'cuda' or 'cpu' (the stand-in), got " .. tostring(device), 2)
  end
  local self = setmetatable({device = device}, Graph)
  if device == 'cpu' then
    self.fn = fn
    return self
  end
  local C = core.C
  local h = C.crl_cuda_graph_begin()
  if h == nil then error(core.last_error(), 2) end
  local ok, err = pcall(fn)
  if not ok then
    C.crl_cuda_graph_free(h) -- ends the capture: the stream works again
    error(err, 0)
  end
  if C.crl_cuda_graph_end(h) ~= 0 then
    local msg = core.last_error()
    C.crl_cuda_graph_free(h)
    error(msg, 2)
  end
  self.handle = require('ffi').gc(h, C.crl_cuda_graph_free)
  return self
end
crlab.cuda.graph = graph

-- The larger parts load on first use: crlab.nn, crlab.models, crlab.optim,
-- crlab.data, crlab.train, crlab.checkpoint, crlab.json, crlab.image,
-- crlab.transforms, crlab.metrics, crlab.explore.
local lazy = {nn = 'crlab.nn', models = 'crlab.models', optim = 'crlab.optim', data = 'crlab.data',
              train = 'crlab.train', checkpoint = 'crlab.checkpoint', json = 'crlab.json',
              image = 'crlab.image', transforms = 'crlab.transforms', metrics = 'crlab.metrics',
              explore = 'crlab.explore'}
setmetatable(crlab, {__index = function(t, k)
  local mod = lazy[k]
  if mod then
    local v = require(mod)
    rawset(t, k, v)
    return v
  end
end})

return crlab
