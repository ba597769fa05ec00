-- nn.Module: the contract every layer follows, and the parameter slab.
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

return function(nn)
  local Module = nn.class('Module')

  -- Modules are made on the host, as in Torch7, and moved with :cuda() /
  -- :float() / :type(device); nothing below names a device again: kernels
  -- put their outputs on the device of their inputs.
  local HOST = C.CRL_CPU

  function Module:__init()
    self.output = nn.buffer()
    self.gradInput = nn.buffer()
    self.train = true
  end

  -- An empty float32 tensor for a kernel to resize (and move).
  function nn.buffer(dtype) return T.new(dtype or C.CRL_FLOAT32, HOST, {0}) end
  -- A new float32 parameter or state tensor of this size, zero-filled.
  function nn.param(size) return T.new(C.CRL_FLOAT32, HOST, size) end

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

  -- Moves every tensor of the module tree to a device: the parameter and
  -- gradient slabs as a whole (the modules' parameters stay views of them),
  -- running statistics and other state by copy, output and scratch buffers
  -- as empty tensors there; plans made for the old device are dropped.
  -- device: 'cuda', 'cpu' / 'float', or CRL_CUDA / CRL_CPU.
  local function device_of(device)
    if device == 'cuda' or device == C.CRL_CUDA then return C.CRL_CUDA end
    if device == 'cpu' or device == 'float' or device == C.CRL_CPU then return C.CRL_CPU end
    error("Module:type: device 'cuda' or 'cpu', got " .. tostring(device), 3)
  end

  -- The copy of v on dev (v itself when it is there already).
  local function to_device(v, dev)
    if v.device == dev then return v end
    if v.storage == nil or v:numel() == 0 then return T.new(v.dtype, dev, {0}) end
    local h = v:plain()
    return dev == C.CRL_CUDA and h:cuda() or h:cpu()
  end

  -- Every {table, key, new value} the move needs, found before anything is
  -- changed, so that a failure (out of device memory, say) leaves the
  -- model as it was.
  local function plan_moves(m, dev, moves, seen, skip)
    local function visit(tbl)
      if seen[tbl] then return end
      seen[tbl] = true
      for k, v in pairs(tbl) do
        if T.isTensor(v) then
          if v.device ~= dev and not skip[v] then moves[#moves + 1] = {tbl, k, to_device(v, dev)} end
        elseif type(v) == 'table' and getmetatable(v) == nil then
          visit(v)
        end
      end
    end
    visit(m)
    for _, c in ipairs(m:children()) do plan_moves(c, dev, moves, seen, skip) end
  end

  function Module:type(device)
    local dev = device_of(device)
    local params, grads = self:parameters()
    local nP, nG
    if self.flatParameters then
      nP, nG = to_device(self.flatParameters, dev), to_device(self.flatGradParameters, dev)
    else
      for _, p in ipairs(params) do
        if p.storage ~= nil and p.storage.nbytes > p:numel() * 4 then
          error('Module:type: the parameters of ' .. self.__typename .. ' are views of a parameter slab that ' ..
                'an enclosing module made (getParameters); move that module instead', 2)
        end
      end
    end
    -- the parameters are views of the slab: they move with it, not by copy
    local skip = {}
    if nP then
      for i, p in ipairs(params) do skip[p], skip[grads[i]] = true, true end
    end
    local moves = {}
    plan_moves(self, dev, moves, {}, skip)
    -- nothing has failed: commit
    if nP then
      local off = 0
      for i, p in ipairs(params) do
        local n = p:numel()
        check(C.crl_tensor_set(p, nP:narrow(1, off + 1, n):view(p:size())))
        check(C.crl_tensor_set(grads[i], nG:narrow(1, off + 1, n):view(p:size())))
        off = off + n
      end
      self.flatParameters, self.flatGradParameters = nP, nG
    end
    for _, mv in ipairs(moves) do mv[1][mv[2]] = mv[3] end
    local function drop_plans(m)
      m._plan = nil
      for _, c in ipairs(m:children()) do drop_plans(c) end
    end
    drop_plans(self)
    return self
  end

  function Module:float() return self:type('cpu') end
  function Module:cuda() return self:type('cuda') end

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
    local dev = params[1] and params[1].device or HOST
    local flatP = T.new(C.CRL_FLOAT32, dev, {total})
    local flatG = T.new(C.CRL_FLOAT32, dev, {total})
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
