-- nn.Module: the contract every layer follows, and the parameter slab.
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

return function(nn)
  local Module = nn.class('Module')

  function Module:__init()
    self.output = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0})
    self.gradInput = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0})
    self.train = true
  end

  -- An empty float32 tensor for a kernel to resize.
  function nn.buffer() return T.new(C.CRL_FLOAT32, C.CRL_CPU, {0}) end

  function Module:updateOutput(input) error(self.__typename .. ' has no updateOutput', 2) end
  function Module:updateGradInput(input, gradOutput) error(self.__typename .. ' has no updateGradInput', 2) end
  function Module:accGradParameters(input, gradOutput) end

  -- Layouts. Layers that read blocked (nChw16c) tensors say so with
  -- acceptsBlocked; the containers give every other layer a plain input and
  -- every layer a gradOutput in the layout of its output; forward, the
  -- public entry, returns a plain tensor. nn.asLayout(owner, key, x, layout)
  -- is x itself when it already has that layout, else x converted into a
  -- buffer owner[key] that is reused from call to call.
  Module.acceptsBlocked = false
  function nn.asLayout(owner, key, x, layout)
    if x.layout == layout then return x end
    local buf = owner[key]
    if buf == nil then
      buf = nn.buffer()
      owner[key] = buf
    end
    check(C.crl_tensor_reorder(buf, x, layout))
    return buf
  end
  -- the input a child should see
  function nn.inputFor(owner, key, child, x)
    if x.layout == 0 or child.acceptsBlocked then return x end
    return nn.asLayout(owner, key, x, 0)
  end

  function Module:forward(input)
    local out = self:updateOutput(input)
    if out.layout ~= 0 then return nn.asLayout(self, '_plainOutput', out, 0) end
    return out
  end

  function Module:backward(input, gradOutput)
    self:updateGradInput(input, gradOutput)
    self:accGradParameters(input, gradOutput)
    return self.gradInput
  end

  -- params, grads, tags ('weight', 'bias' or 'bn' for each entry)
  function Module:parameters()
    return {}, {}, {}
  end

  -- Non-trainable state saved with the weights (BN running statistics).
  function Module:buffers() return {} end

  function Module:children() return {} end

  function Module:zeroGradParameters()
    local _, grads = self:parameters()
    for _, g in ipairs(grads) do g:zero() end
  end

  function Module:training()
    self.train = true
    for _, c in ipairs(self:children()) do c:training() end
    return self
  end

  function Module:evaluate()
    self.train = false
    for _, c in ipairs(self:children()) do c:evaluate() end
    return self
  end

  function Module:float() return self end
  function Module:cuda()
    error('crlab.nn: modules have no CUDA kernels yet (the GPU backend is open work)', 2)
  end

  function Module:__repr() return self.__typename end

  -- Every parameter as (name, tensor) in a fixed order, with dotted paths
  -- such as '3.weight' (used by checkpoints).
  function Module:namedParameters(prefix, out)
    out = out or {}
    prefix = prefix or ''
    local params, _, tags = self:parameters(true)
    local names = self.paramNames or {}
    for i, p in ipairs(params) do
      out[#out + 1] = {prefix .. (names[i] or tags[i] or tostring(i)), p}
    end
    for i, c in ipairs(self:children()) do c:namedParameters(prefix .. i .. '.', out) end
    return out
  end

  function Module:namedBuffers(prefix, out)
    out = out or {}
    prefix = prefix or ''
    for _, b in ipairs(self:buffers()) do out[#out + 1] = {prefix .. b[1], b[2]} end
    for i, c in ipairs(self:children()) do c:namedBuffers(prefix .. i .. '.', out) end
    return out
  end

  -- Moves every parameter and gradient into one contiguous slab each and
  -- makes the modules' tensors views of it (Torch7's getParameters). Returns
  -- the flat parameters, the flat gradients and a table of
  -- {offset, count, tag} ranges.
  function Module:getParameters()
    local params, grads, tags = self:parameters()
    local total = 0
    for _, p in ipairs(params) do total = total + p:numel() end
    local flatP = T.new(C.CRL_FLOAT32, C.CRL_CPU, {total})
    local flatG = T.new(C.CRL_FLOAT32, C.CRL_CPU, {total})
    local ranges, off = {}, 0
    for i, p in ipairs(params) do
      local n = p:numel()
      local pv = flatP:narrow(1, off + 1, n):view(p:size())
      local gv = flatG:narrow(1, off + 1, n):view(p:size())
      pv:copy(p)
      check(C.crl_tensor_set(p, pv))
      check(C.crl_tensor_set(grads[i], gv))
      ranges[i] = {offset = off, count = n, tag = tags[i]}
      off = off + n
    end
    self.flatParameters, self.flatGradParameters = flatP, flatG
    return flatP, flatG, ranges
  end

end
