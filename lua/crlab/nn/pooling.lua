-- nn.MaxPool2d(k, {stride = k, padding = 0}), nn.AvgPool2d(k, {...}) and
-- nn.GlobalAvgPool2d() ((N, C, H, W) -> (N, C)).
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

return function(nn)
  local function params(k, opts, name)
    opts = opts or {}
    if type(k) ~= 'number' or k < 1 or k % 1 ~= 0 then
      error(name .. ': kernel size must be a positive integer, got ' .. tostring(k), 3)
    end
    local s, p = opts.stride or k, opts.padding or 0
    return ffi.new('crl_pool2d_params', k, k, s, s, p, p, opts.count_include_pad == false and 0 or 1)
  end

  local MaxPool2d = nn.class('MaxPool2d', nn.Module)
  MaxPool2d.acceptsBlocked = true

  function MaxPool2d:__init(k, opts)
    nn.Module.__init(self)
    self.params = params(k, opts, 'nn.MaxPool2d')
    self.indices = nn.buffer(C.CRL_INT32)
  end

  function MaxPool2d:updateOutput(input)
    check(C.crl_maxpool2d_forward(self.output, self.indices, input, self.params))
    return self.output
  end

  function MaxPool2d:updateGradInput(input, gradOutput)
    check(C.crl_maxpool2d_backward(self.gradInput, gradOutput, self.indices, input))
    return self.gradInput
  end

  local function repr(self)
    local p = self.params
    return string.format('%s(%dx%d, stride %d, pad %d)', self.__typename, p.kernel_h, p.kernel_w, p.stride_h, p.pad_h)
  end
  MaxPool2d.__repr = repr

  local AvgPool2d = nn.class('AvgPool2d', nn.Module)
  AvgPool2d.acceptsBlocked = true

  function AvgPool2d:__init(k, opts)
    nn.Module.__init(self)
    self.params = params(k, opts, 'nn.AvgPool2d')
  end

  function AvgPool2d:updateOutput(input)
    check(C.crl_avgpool2d_forward(self.output, input, self.params))
    return self.output
  end

  function AvgPool2d:updateGradInput(input, gradOutput)
    check(C.crl_avgpool2d_backward(self.gradInput, gradOutput, input, self.params))
    return self.gradInput
  end

  AvgPool2d.__repr = repr

  local GlobalAvgPool2d = nn.class('GlobalAvgPool2d', nn.Module)

  GlobalAvgPool2d.acceptsBlocked = true

  function GlobalAvgPool2d:updateOutput(input)
    if input:dim() ~= 4 then
      error('nn.GlobalAvgPool2d expects (N, C, H, W), got size ' .. tostring(input:size()), 3)
    end
    check(C.crl_global_avgpool2d_forward(self.output, input))
    return self.output
  end

  function GlobalAvgPool2d:updateGradInput(input, gradOutput)
    check(C.crl_global_avgpool2d_backward(self.gradInput, gradOutput, input))
    return self.gradInput
  end
end
