-- Linear, ReLU, Dropout, Flatten, Identity and the zero-padding shortcut
-- of the CIFAR ResNets (option A of He et al. 2016).
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

return function(nn)
  local Module = nn.Module
  local sizes_ct = ffi.typeof('int64_t[5]')

  ---------------------------------------------------------------------------
  -- y = x W^T + b; W (O, I) and b (O) start uniform in +-1/sqrt(I) (PyTorch).
  local Linear = nn.class('Linear', Module)

  function Linear:__init(inputSize, outputSize, opts)
    Module.__init(self)
    opts = opts or {}
    self.inputSize, self.outputSize = inputSize, outputSize
    local bound = 1 / math.sqrt(inputSize)
    self.weight = nn.param({outputSize, inputSize}):uniform(-bound, bound)
    self.gradWeight = nn.param({outputSize, inputSize})
    if opts.bias ~= false then
      self.bias = nn.param({outputSize}):uniform(-bound, bound)
      self.gradBias = nn.param({outputSize})
    end
    self.paramNames = {'weight', 'bias'}
  end

  function Linear:parameters()
    if self.bias then return {self.weight, self.bias}, {self.gradWeight, self.gradBias}, {'weight', 'bias'} end
    return {self.weight}, {self.gradWeight}, {'weight'}
  end

  function Linear:updateOutput(input)
    check(C.crl_linear_forward(self.output, input, self.weight, self.bias))
    return self.output
  end

  function Linear:updateGradInput(input, gradOutput)
    self._gradOutput = gradOutput
    check(C.crl_linear_backward(self.gradInput, nil, nil, gradOutput, input, self.weight))
    return self.gradInput
  end

  function Linear:accGradParameters(input, gradOutput)
    check(C.crl_linear_backward(nil, self.gradWeight, self.bias and self.gradBias or nil, gradOutput,
                                input, self.weight))
  end

  function Linear:__repr()
    return string.format('nn.Linear(%d -> %d%s)', self.inputSize, self.outputSize,
                         self.bias and '' or ', without bias')
  end

  ---------------------------------------------------------------------------
  -- nn.ReLU() or nn.ReLU(true): in place, overwriting its input and, in
  -- backward, its gradOutput (safe when nothing else reads them, e.g.
  -- after a residual sum).
  local ReLU = nn.class('ReLU', Module)
  ReLU.acceptsBlocked = true

  function ReLU:__init(inplace)
    Module.__init(self)
    self.inplace = inplace or false
  end

  function ReLU:updateOutput(input)
    if self.inplace then self.output = input end
    check(C.crl_relu_forward(self.output, input))
    return self.output
  end

  function ReLU:updateGradInput(input, gradOutput)
    if self.inplace then self.gradInput = gradOutput end
    check(C.crl_relu_backward(self.gradInput, gradOutput, self.output))
    return self.gradInput
  end

  function ReLU:__repr() return self.inplace and 'nn.ReLU(in place)' or 'nn.ReLU' end

  ---------------------------------------------------------------------------
  -- Dropout(p): zeroes each element with probability p in training and
  -- scales the rest by 1/(1-p); the identity in evaluation.
  local Dropout = nn.class('Dropout', Module)

  function Dropout:__init(p)
    Module.__init(self)
    self.p = p or 0.5
    if not (self.p >= 0 and self.p < 1) then error('nn.Dropout: p must be in [0, 1), got ' .. tostring(p), 2) end
    self.mask = nn.buffer()
  end

  function Dropout:updateOutput(input)
    if not self.train or self.p == 0 then
      self.output = input
      return input
    end
    if self.output == input then self.output = nn.buffer() end
    check(C.crl_dropout_forward(self.output, self.mask, input, self.p, nil))
    return self.output
  end

  function Dropout:updateGradInput(input, gradOutput)
    if not self.train or self.p == 0 then
      self.gradInput = gradOutput
      return gradOutput
    end
    if self.gradInput == gradOutput then self.gradInput = nn.buffer() end
    check(C.crl_tensor_binary(self.gradInput, gradOutput, self.mask, C.CRL_OP_MUL))
    return self.gradInput
  end

  function Dropout:__repr() return 'nn.Dropout(' .. self.p .. ')' end

  ---------------------------------------------------------------------------
  -- (N, ...) -> (N, prod(...)), a view: no copy.
  local Flatten = nn.class('Flatten', Module)

  function Flatten:__init()
    Module.__init(self)
    self.sz = sizes_ct()
  end

  function Flatten:updateOutput(input)
    self.sz[0], self.sz[1] = input.sizes[0], -1
    check(C.crl_tensor_view(self.output, input, 2, self.sz))
    return self.output
  end

  function Flatten:updateGradInput(input, gradOutput)
    check(C.crl_tensor_view(self.gradInput, gradOutput, input.ndim, input.sizes))
    return self.gradInput
  end

  ---------------------------------------------------------------------------
  local Identity = nn.class('Identity', Module)
  Identity.acceptsBlocked = true

  function Identity:updateOutput(input)
    self.output = input
    return input
  end

  function Identity:updateGradInput(input, gradOutput)
    self.gradInput = gradOutput
    return gradOutput
  end

  ---------------------------------------------------------------------------
  -- The parameter-free shortcut of the CIFAR ResNets: subsample by
  -- `stride` and zero-pad the channels from inC to outC (half on each side).
  local ShortcutPad = nn.class('ShortcutPad', Module)

  function ShortcutPad:__init(inC, outC, stride)
    Module.__init(self)
    self.inC, self.outC, self.stride = inC, outC, stride or 1
  end

  ShortcutPad.acceptsBlocked = true

  function ShortcutPad:updateOutput(input)
    check(C.crl_shortcut_pad_forward(self.output, input, self.outC, self.stride))
    return self.output
  end

  function ShortcutPad:updateGradInput(input, gradOutput)
    check(C.crl_shortcut_pad_backward(self.gradInput, gradOutput, input, self.stride))
    return self.gradInput
  end

  function ShortcutPad:__repr()
    return string.format('nn.ShortcutPad(%d -> %d, stride %d)', self.inC, self.outC, self.stride)
  end
end
