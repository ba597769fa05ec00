-- nn.Conv2d(inC, outC, k, {stride = 1, padding = 0, bias = true}): weights
-- (F, C, KH, KW) start from Kaiming-normal with fan_in (He et al. 2015).
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

return function(nn)
  local Conv2d = nn.class('Conv2d', nn.Module)

  -- One im2col workspace shared by every convolution of the process: the
  -- layers run one at a time, so it only grows to the largest need.
  local workspace = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0})

  function Conv2d:__init(inC, outC, k, opts)
    nn.Module.__init(self)
    opts = opts or {}
    local kh, kw = k, k
    if type(k) == 'table' then kh, kw = k[1], k[2] end
    for _, v in ipairs({inC, outC, kh, kw}) do
      if type(v) ~= 'number' or v < 1 or v % 1 ~= 0 then
        error('nn.Conv2d: channels and kernel size must be positive integers', 2)
      end
    end
    self.inC, self.outC, self.kh, self.kw = inC, outC, kh, kw
    local stride, pad = opts.stride or 1, opts.padding or 0
    self.params = ffi.new('crl_conv2d_params', stride, stride, pad, pad)
    self.weight = T.new(C.CRL_FLOAT32, C.CRL_CPU, {outC, inC, kh, kw}):normal(0, math.sqrt(2 / (inC * kh * kw)))
    self.gradWeight = T.new(C.CRL_FLOAT32, C.CRL_CPU, {outC, inC, kh, kw})
    if opts.bias ~= false then
      self.bias = T.new(C.CRL_FLOAT32, C.CRL_CPU, {outC})
      self.gradBias = T.new(C.CRL_FLOAT32, C.CRL_CPU, {outC})
    end
    self.paramNames = {'weight', 'bias'}
  end

  function Conv2d:parameters()
    if self.bias then return {self.weight, self.bias}, {self.gradWeight, self.gradBias}, {'weight', 'bias'} end
    return {self.weight}, {self.gradWeight}, {'weight'}
  end

  function Conv2d:updateOutput(input)
    check(C.crl_conv2d_forward(self.output, input, self.weight, self.bias, self.params, workspace))
    return self.output
  end

  -- Both gradients in one pass over the columns.
  function Conv2d:backward(input, gradOutput)
    check(C.crl_conv2d_backward(self.gradInput, self.gradWeight, self.bias and self.gradBias or nil,
                                gradOutput, input, self.weight, self.params, workspace))
    return self.gradInput
  end

  function Conv2d:updateGradInput(input, gradOutput)
    check(C.crl_conv2d_backward(self.gradInput, nil, nil, gradOutput, input, self.weight, self.params, workspace))
    return self.gradInput
  end

  function Conv2d:accGradParameters(input, gradOutput)
    check(C.crl_conv2d_backward(nil, self.gradWeight, self.bias and self.gradBias or nil, gradOutput, input,
                                self.weight, self.params, workspace))
  end

  function Conv2d:__repr()
    return string.format('nn.Conv2d(%d -> %d, %dx%d, stride %d, pad %d%s)', self.inC, self.outC, self.kh,
                         self.kw, self.params.stride_h, self.params.pad_h, self.bias and '' or ', no bias')
  end
end
