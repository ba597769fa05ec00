-- nn.BatchNorm2d(C) over (N, C, H, W) and nn.BatchNorm1d(C) over (N, C):
-- batch statistics in training (running averages updated with momentum
-- 0.1, unbiased variance, as in PyTorch), running statistics in evaluation.
-- {relu = true} fuses the ReLU that usually follows (one pass, not two).
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

return function(nn)
  local BatchNorm = nn.class('BatchNorm', nn.Module)

  function BatchNorm:__init(nFeatures, opts)
    nn.Module.__init(self)
    opts = opts or {}
    self.nFeatures = nFeatures
    self.eps = opts.eps or 1e-5
    self.momentum = opts.momentum or 0.1
    self.affine = opts.affine ~= false
    self.relu = opts.relu or false -- a ReLU fused after the normalisation
    if self.affine then
      self.weight = nn.param({nFeatures}):fill(1)
      self.bias = nn.param({nFeatures})
      self.gradWeight = nn.param({nFeatures})
      self.gradBias = nn.param({nFeatures})
    end
    self.running_mean = nn.param({nFeatures})
    self.running_var = nn.param({nFeatures}):fill(1)
    self.save_mean = nn.buffer()
    self.save_invstd = nn.buffer()
    self.paramNames = {'weight', 'bias'}
  end

  function BatchNorm:parameters()
    if not self.affine then return {}, {}, {} end
    return {self.weight, self.bias}, {self.gradWeight, self.gradBias}, {'bn', 'bn'}
  end

  function BatchNorm:buffers()
    return {{'running_mean', self.running_mean}, {'running_var', self.running_var}}
  end

  function BatchNorm:updateOutput(input)
    if input:dim() ~= self.expectedDim then
      error(string.format('%s expects a %d-dimensional input, got size %s', self.__typename,
                          self.expectedDim, tostring(input:size())), 3)
    end
    check(C.crl_batchnorm_forward(self.output, self.save_mean, self.save_invstd, self.running_mean,
                                  self.running_var, input, self.weight, self.bias, self.train and 1 or 0,
                                  self.momentum, self.eps, self.relu and 1 or 0))
    return self.output
  end

  -- In evaluation mode the statistics are constants (the running ones).
  function BatchNorm:backward(input, gradOutput)
    check(C.crl_batchnorm_backward(self.gradInput, self.affine and self.gradWeight or nil,
                                   self.affine and self.gradBias or nil, gradOutput, input, self.weight,
                                   self.save_mean, self.save_invstd, self.train and 1 or 0,
                                   self.relu and self.output or nil))
    return self.gradInput
  end

  function BatchNorm:__repr()
    return string.format('%s(%d, eps %g, momentum %g%s)%s', self.__typename, self.nFeatures, self.eps,
                         self.momentum, self.affine and '' or ', no affine', self.relu and ' + ReLU' or '')
  end

  local BatchNorm2d = nn.class('BatchNorm2d', BatchNorm)
  BatchNorm2d.expectedDim = 4
  BatchNorm2d.acceptsBlocked = true
  local BatchNorm1d = nn.class('BatchNorm1d', BatchNorm)
  BatchNorm1d.expectedDim = 2
end
