-- Containers: Sequential, Residual (branch + shortcut) and Concat (outputs
-- of several branches side by side along a dimension, for DenseNet).
local core = require 'crlab.core'
local C, check = core.C, core.check

return function(nn)
  local Module = nn.Module

  local function gather(mods)
    local P, G, Tg = {}, {}, {}
    for _, m in ipairs(mods) do
      local p, g, t = m:parameters()
      for i = 1, #p do P[#P + 1], G[#G + 1], Tg[#Tg + 1] = p[i], g[i], t[i] end
    end
    return P, G, Tg
  end

  local function indent(s) return (s:gsub('\n', '\n  ')) end

  ---------------------------------------------------------------------------
  local Sequential = nn.class('Sequential', Module)

  function Sequential:__init(...)
    Module.__init(self)
    self.modules = {...}
  end

  function Sequential:add(m)
    self.modules[#self.modules + 1] = m
    return self
  end

  function Sequential:children() return self.modules end
  function Sequential:parameters(own_only)
    if own_only then return {}, {}, {} end
    return gather(self.modules)
  end

  Sequential.acceptsBlocked = true

  -- inputs[i]: what module i was given (its predecessor's output, or that
  -- converted to plain for a layer that reads only plain tensors).
  function Sequential:updateOutput(input)
    local x = input
    local inputs = self._inputs or {}
    self._inputs = inputs
    for i, m in ipairs(self.modules) do
      x = nn.inputFor(self, i, m, x)
      inputs[i] = x
      x = m:updateOutput(x)
    end
    self.output = x
    return x
  end

  function Sequential:backward(input, gradOutput)
    local g = gradOutput
    local inputs = self._inputs
    for i = #self.modules, 1, -1 do
      local m = self.modules[i]
      g = nn.asLayout(self, -i, g, m.output.layout)
      g = m:backward(inputs[i], g) -- what forward gave it (input, or its plain copy)
      if i > 1 then g = nn.asLayout(self, -i - 0.5, g, inputs[i].layout) end
    end
    self.gradInput = g
    return g
  end

  -- No module before the first needs its input gradient: a model's input
  -- is data. (Set on the outer container by the trainer and the benchmark.)
  function Sequential:skipInputGradient()
    local m = self.modules[1]
    m.needGradInput = false
    if m.skipInputGradient then m:skipInputGradient() end
    return self
  end

  function Sequential:__repr()
    local lines = {'nn.Sequential {'}
    for i, m in ipairs(self.modules) do
      lines[#lines + 1] = '  (' .. i .. '): ' .. indent(tostring(m))
    end
    lines[#lines + 1] = '}'
    return table.concat(lines, '\n')
  end

  ---------------------------------------------------------------------------
  -- output = branch(x) + shortcut(x); shortcut nil is the identity.
  local Residual = nn.class('Residual', Module)

  function Residual:__init(branch, shortcut)
    Module.__init(self)
    self.branch, self.shortcut = branch, shortcut
  end

  function Residual:children()
    return self.shortcut and {self.branch, self.shortcut} or {self.branch}
  end
  function Residual:parameters(own_only)
    if own_only then return {}, {}, {} end
    return gather(self:children())
  end

  Residual.acceptsBlocked = true

  function Residual:updateOutput(input)
    self._binput = nn.inputFor(self, 'bin', self.branch, input)
    local b = self.branch:updateOutput(self._binput)
    local s = input
    if self.shortcut then
      self._sinput = nn.inputFor(self, 'sin', self.shortcut, input)
      s = self.shortcut:updateOutput(self._sinput)
    end
    check(C.crl_tensor_binary(self.output, b, nn.asLayout(self, 'sout', s, b.layout), C.CRL_OP_ADD))
    return self.output
  end

  function Residual:backward(input, gradOutput)
    local bo, so = self.branch.output, self.shortcut and self.shortcut.output or input
    local gb = self.branch:backward(self._binput, nn.asLayout(self, 'gbo', gradOutput, bo.layout))
    local gs = self.shortcut and self.shortcut:backward(self._sinput, nn.asLayout(self, 'gso', gradOutput, so.layout))
               or gradOutput
    gb = nn.asLayout(self, 'gbi', gb, input.layout)
    gs = nn.asLayout(self, 'gsi', gs, input.layout)
    check(C.crl_tensor_binary(self.gradInput, gb, gs, C.CRL_OP_ADD))
    return self.gradInput
  end

  function Residual:__repr()
    return 'nn.Residual {\n  branch: ' .. indent(tostring(self.branch)) .. '\n  shortcut: ' ..
           (self.shortcut and indent(tostring(self.shortcut)) or 'identity') .. '\n}'
  end

  ---------------------------------------------------------------------------
  -- Concat(dim, m1, m2, ...): every module sees the input; their outputs
  -- are joined along dim (1-based; 2 is channels for NCHW).
  local Concat = nn.class('Concat', Module)

  function Concat:__init(dim, ...)
    Module.__init(self)
    self.dim = dim
    self.modules = {...}
    self.gradSlices = {}
    for i = 1, #self.modules do self.gradSlices[i] = nn.buffer() end
  end

  function Concat:children() return self.modules end
  function Concat:parameters(own_only)
    if own_only then return {}, {}, {} end
    return gather(self.modules)
  end

  function Concat:updateOutput(input)
    local outs, total = {}, 0
    for i, m in ipairs(self.modules) do
      outs[i] = nn.asLayout(self, 'out' .. i, m:updateOutput(nn.inputFor(self, 'in' .. i, m, input)), 0)
      total = total + outs[i]:size(self.dim)
    end
    local size = outs[1]:size()
    size[self.dim] = total
    local sz = self.sizes_buf or require('ffi').new('int64_t[5]')
    self.sizes_buf = sz
    for d = 1, #size do sz[d - 1] = size[d] end
    check(C.crl_tensor_resize(self.output, #size, sz)) -- reallocates only when it grows
    local off = 0
    for i, o in ipairs(outs) do
      local n = o:size(self.dim)
      check(C.crl_tensor_copy(self.output:narrow(self.dim, off + 1, n), o))
      off = off + n
    end
    return self.output
  end

  function Concat:backward(input, gradOutput)
    local off = 0
    for i, m in ipairs(self.modules) do
      local n = m.output:size(self.dim)
      check(C.crl_tensor_contiguous(self.gradSlices[i], gradOutput:narrow(self.dim, off + 1, n)))
      local g = m:backward(nn.inputFor(self, 'in' .. i, m, input),
                           nn.asLayout(self, 'gout' .. i, self.gradSlices[i], m.output.layout))
      g = nn.asLayout(self, 'gin' .. i, g, input.layout)
      if i == 1 then
        check(C.crl_tensor_contiguous(self.gradInput, g))
      else
        check(C.crl_tensor_binary(self.gradInput, self.gradInput, g, C.CRL_OP_ADD))
      end
      off = off + n
    end
    return self.gradInput
  end

  function Concat:__repr()
    local lines = {'nn.Concat(' .. self.dim .. ') {'}
    for i, m in ipairs(self.modules) do lines[#lines + 1] = '  (' .. i .. '): ' .. indent(tostring(m)) end
    lines[#lines + 1] = '}'
    return table.concat(lines, '\n')
  end
end
