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

-- CUDA: crlab.cuda.available() is false on machines without a GPU, and
-- t:cuda() then raises an error that says so.
crlab.cuda = {
  compiled = function() return core.C.crl_cuda_compiled() == 1 end,
  deviceCount = function() return core.C.crl_cuda_device_count() end,
  available = function() return core.C.crl_cuda_device_count() > 0 end,
  synchronize = function() core.check(core.C.crl_cuda_synchronize()) end,
}

-- The larger parts load on first use: crlab.nn, crlab.models, crlab.optim,
-- crlab.data, crlab.train, crlab.checkpoint, crlab.json, crlab.image,
-- crlab.transforms, crlab.metrics.
local lazy = {nn = 'crlab.nn', models = 'crlab.models', optim = 'crlab.optim', data = 'crlab.data',
              train = 'crlab.train', checkpoint = 'crlab.checkpoint', json = 'crlab.json',
              image = 'crlab.image', transforms = 'crlab.transforms', metrics = 'crlab.metrics'}
setmetatable(crlab, {__index = function(t, k)
  local mod = lazy[k]
  if mod then
    local v = require(mod)
    rawset(t, k, v)
    return v
  end
end})

return crlab
