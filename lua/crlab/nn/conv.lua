-- nn.Conv2d(inC, outC, k, {stride = 1, padding = 0, dilation = 1, groups = 1,
-- bias = true}): weights (F, C/groups, KH, KW) start from Kaiming-normal with
-- fan_in (He et al. 2015). Each layer owns a convolution plan (C): oneDNN's
-- primitives for the shapes it has seen, reordered weights and workspaces,
-- freed with the module. The output is in the machine's blocked layout
-- (nChw16c / nChw8c); the containers convert at the edges, and
-- nn.Module:forward returns a plain tensor.
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

return function(nn)
  local Conv2d = nn.class('Conv2d', nn.Module)
  Conv2d.acceptsBlocked = true

  -- The backend of new plans: 'onednn' (default) or 'reference' (im2col +
  -- OpenBLAS, the path tests compare against).
  local backends = {onednn = C.CRL_CONV_ONEDNN, reference = C.CRL_CONV_REFERENCE}
  local default_backend = 'onednn'
  function nn.convBackend(name)
    local old = default_backend
    if name ~= nil then
      if not backends[name] then error("nn.convBackend: 'onednn' or 'reference', got " .. tostring(name), 2) end
      default_backend = name
    end
    return old
  end

  local function positive(v, what)
    if type(v) ~= 'number' or v < 1 or v % 1 ~= 0 then
      error('nn.Conv2d: ' .. what .. ' must be a positive integer, got ' .. tostring(v), 3)
    end
    return v
  end

  function Conv2d:__init(inC, outC, k, opts)
    nn.Module.__init(self)
    opts = opts or {}
    local kh, kw = k, k
    if type(k) == 'table' then kh, kw = k[1], k[2] end
    positive(inC, 'inC'); positive(outC, 'outC'); positive(kh, 'the kernel size'); positive(kw, 'the kernel size')
    local stride, pad = positive(opts.stride or 1, 'stride'), opts.padding or 0
    local dil, groups = positive(opts.dilation or 1, 'dilation'), positive(opts.groups or 1, 'groups')
    if type(pad) ~= 'number' or pad < 0 or pad % 1 ~= 0 then
      error('nn.Conv2d: padding must be a non-negative integer, got ' .. tostring(pad), 2)
    end
    if inC % groups ~= 0 or outC % groups ~= 0 then
      error(string.format('nn.Conv2d: %d groups must divide inC %d and outC %d', groups, inC, outC), 2)
    end
    self.inC, self.outC, self.kh, self.kw = inC, outC, kh, kw
    self.params = ffi.new('crl_conv2d_params', stride, stride, pad, pad, dil, dil, groups, 0)
    local fan_in = inC / groups * kh * kw
    self.weight = nn.param({outC, inC / groups, kh, kw}):normal(0, math.sqrt(2 / fan_in))
    self.gradWeight = nn.param({outC, inC / groups, kh, kw})
    if opts.bias ~= false then
      self.bias = nn.param({outC})
      self.gradBias = nn.param({outC})
    end
    self.backend = opts.backend or default_backend
    if not backends[self.backend] then error("nn.Conv2d: backend 'onednn' or 'reference', got " .. tostring(self.backend), 2) end
    self.paramNames = {'weight', 'bias'}
  end

  -- The plan is made on first use (and again after a change of backend).
  function Conv2d:plan()
    local p = self._plan
    if p == nil or self._planBackend ~= self.backend then
      p = C.crl_conv2d_plan_new(self.params, backends[self.backend])
      if p == nil then error(core.last_error(), 2) end
      p = ffi.gc(p, C.crl_conv2d_plan_free)
      self._plan, self._planBackend = p, self.backend
    end
    return p
  end

  -- 'auto' (measured choice per shape), 'direct' or 'winograd'.
  local algos = {auto = C.CRL_CONV_ALGO_AUTO, direct = C.CRL_CONV_ALGO_DIRECT, winograd = C.CRL_CONV_ALGO_WINOGRAD}
  function Conv2d:setAlgorithm(name)
    if not algos[name] then error("setAlgorithm: 'auto', 'direct' or 'winograd', got " .. tostring(name), 2) end
    check(C.crl_conv2d_plan_set_algorithm(self:plan(), algos[name]))
    return self
  end

  -- What the plan ran last (implementation and algorithm per pass).
  function Conv2d:describe() return ffi.string(C.crl_conv2d_plan_describe(self:plan())) end

  function Conv2d:parameters()
    if self.bias then return {self.weight, self.bias}, {self.gradWeight, self.gradBias}, {'weight', 'bias'} end
    return {self.weight}, {self.gradWeight}, {'weight'}
  end

  function Conv2d:updateOutput(input)
    check(C.crl_conv2d_plan_forward(self:plan(), self.output, input, self.weight, self.bias, 0))
    return self.output
  end

  -- Both gradients in one call; the input gradient is skipped where no one
  -- needs it (the first layer of a model: see nn.Sequential).
  function Conv2d:backward(input, gradOutput)
    check(C.crl_conv2d_plan_backward(self:plan(), self.needGradInput ~= false and self.gradInput or nil,
                                     self.gradWeight, self.bias and self.gradBias or nil, gradOutput, input,
                                     self.weight))
    return self.gradInput
  end

  function Conv2d:updateGradInput(input, gradOutput)
    check(C.crl_conv2d_plan_backward(self:plan(), self.gradInput, nil, nil, gradOutput, input, self.weight))
    return self.gradInput
  end

  function Conv2d:accGradParameters(input, gradOutput)
    check(C.crl_conv2d_plan_backward(self:plan(), nil, self.gradWeight, self.bias and self.gradBias or nil,
                                     gradOutput, input, self.weight))
  end

  function Conv2d:__repr()
    local p = self.params
    local extra = ''
    if p.dilation_h > 1 then extra = extra .. ', dilation ' .. p.dilation_h end
    if p.groups > 1 then extra = extra .. ', groups ' .. p.groups end
    return string.format('nn.Conv2d(%d -> %d, %dx%d, stride %d, pad %d%s%s)', self.inC, self.outC, self.kh,
                         self.kw, p.stride_h, p.pad_h, extra, self.bias and '' or ', no bias')
  end
end
