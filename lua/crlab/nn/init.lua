-- crlab.nn: layers as modules in the manner of Torch7's nn. Every module
-- has forward(input) -> output and backward(input, gradOutput) -> gradInput
-- (which also accumulates parameter gradients), parameters(),
-- zeroGradParameters(), training() / evaluate(), and prints as a tree.
-- Modules own their output and gradInput tensors and the C kernels resize
-- them in place, so after the first step a training step allocates no
-- tensor memory. model:getParameters() moves all parameters and gradients
-- into one contiguous slab each (the optimiser updates it in one call).
local nn = {}

-- A class with single inheritance; calling the class constructs.
function nn.class(name, parent)
  local cls = {}
  cls.__index = cls
  cls.__typename = 'nn.' .. name
  cls.__tostring = function(self) return self:__repr() end
  setmetatable(cls, {
    __index = parent,
    __call = function(c, ...)
      local self = setmetatable({}, c)
      self:__init(...)
      return self
    end,
  })
  nn[name] = cls
  return cls
end

require('crlab.nn.module')(nn)
require('crlab.nn.containers')(nn)
require('crlab.nn.layers')(nn)
require('crlab.nn.conv')(nn)
require('crlab.nn.batchnorm')(nn)
require('crlab.nn.pooling')(nn)

return nn
