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

  function Sequential:updateOutput(input)
    local x = input
    for _, m in ipairs(self.modules) do x = m:updateOutput(x) end
    self.output = x
    return x
  end

  function Sequential:backward(input, gradOutput)
    local g = gradOutput
    for i = #self.modules, 2, -1 do
      g = self.modules[i]:backward(self.modules[i - 1].output, g)
    end
    g = self.modules[1]:backward(input, g)
    self.gradInput = g
    return g
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

  function Residual:updateOutput(input)
    local b = self.branch:updateOutput(input)
    local s = self.shortcut and self.shortcut:updateOutput(input) or input
    check(C.crl_tensor_binary(self.output, b, s, C.CRL_OP_ADD))
    return self.output
  end

  function Residual:backward(input, gradOutput)
    local gb = self.branch:backward(input, gradOutput)
    local gs = self.shortcut and self.shortcut:backward(input, gradOutput) or gradOutput
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
      outs[i] = m:updateOutput(input)
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
      local g = m:backward(input, self.gradSlices[i])
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
