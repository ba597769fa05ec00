-- crlab.loss: the losses as criterion objects over logits (N, K) and
-- 0-based labels (an int32 tensor or a Lua table of integers).
--
--   local crl = crlab.loss.crl{alpha = 1.5, beta = 1}      -- reduction 'mean'
--   local value = crl:forward(logits, {0, 2, 1})           -- a Lua number
--   local grad = crl:backward(logits, {0, 2, 1})           -- (N, K) tensor
--   local v, per = crl:forwardTensor(logits, labels)       -- (1) and (N) tensors
--
-- With reduction = 'none', forward returns the (N) per-example losses.
-- Like nn criteria, each object owns its output and gradient buffers and
-- reuses them on every call: clone() a result you want to keep.
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

local M = {}

local reductions = {mean = C.CRL_REDUCE_MEAN, sum = C.CRL_REDUCE_SUM, none = C.CRL_REDUCE_NONE}

local Criterion = {}
Criterion.__index = Criterion

local function labels_tensor(self, labels, device)
  if T.isTensor(labels) then return labels end
  if type(labels) ~= 'table' then
    error('labels must be an int32 tensor or a table of 0-based integers, got ' .. type(labels), 3)
  end
  local n = #labels
  local buf = self._labels
  if buf == nil or buf:numel() ~= n then
    buf = T.new(C.CRL_INT32, C.CRL_CPU, {n})
    self._labels = buf
  end
  local p = ffi.cast('int32_t *', C.crl_tensor_data(buf))
  for i = 1, n do
    local v = labels[i]
    if type(v) ~= 'number' or v % 1 ~= 0 then
      error('label ' .. i .. ' must be an integer class index (0-based), got ' .. tostring(v), 3)
    end
    p[i - 1] = v
  end
  if device ~= nil and device ~= C.CRL_CPU then -- the logits' device: one upload
    local dev = self._labels_dev
    if dev == nil or dev:numel() ~= n or dev.device ~= device then
      dev = T.new(C.CRL_INT32, device, {n})
      self._labels_dev = dev
    end
    dev:copy(buf)
    return dev
  end
  return buf
end

function Criterion:forward(logits, labels)
  if not T.isTensor(logits) then error('logits must be a tensor, got ' .. type(logits), 2) end
  local y = labels_tensor(self, labels, logits.device)
  local v = ffi.new('double[1]')
  local per = self.reduction == 'none' and self.output_buffer or nil
  check(C.crl_loss_forward(v, per, logits, y, self.spec))
  if per then
    self.output = per
  else
    self.output = v[0]
  end
  return self.output
end

-- Like forward, but nothing is read back into Lua: returns the value as a
-- one-element tensor and the (N) per-example losses, both owned by the
-- criterion and overwritten by the next call (a training loop sums them
-- with crlab.metrics and reads the sums only when it prints).
function Criterion:forwardTensor(logits, labels)
  if not T.isTensor(logits) then error('logits must be a tensor, got ' .. type(logits), 2) end
  local y = labels_tensor(self, labels, logits.device)
  check(C.crl_loss_forward_into(self.value, self.output_buffer, logits, y, self.spec))
  return self.value, self.output_buffer
end

-- grad_output: optional, a number (mean/sum) or an (N) tensor (none).
function Criterion:backward(logits, labels, grad_output)
  if not T.isTensor(logits) then error('logits must be a tensor, got ' .. type(logits), 2) end
  local y = labels_tensor(self, labels, logits.device)
  local go = grad_output
  if type(go) == 'number' then
    if self._go == nil or self._go.device ~= logits.device then
      self._go = T.new(C.CRL_FLOAT32, logits.device, {1})
    end
    self._go:fill(go)
    go = self._go
  end
  check(C.crl_loss_backward(self.gradInput, logits, y, go, self.spec))
  return self.gradInput
end
Criterion.updateOutput = Criterion.forward
Criterion.updateGradInput = Criterion.backward

function Criterion:__call(logits, labels) return self:forward(logits, labels) end

function Criterion:__tostring()
  local parts = {}
  for _, k in ipairs(self.param_names) do
    parts[#parts + 1] = k .. '=' .. tostring(self[k])
  end
  parts[#parts + 1] = "reduction='" .. self.reduction .. "'"
  return 'crlab.loss.' .. self.name .. '{' .. table.concat(parts, ', ') .. '}'
end

local function make(name, kind, defaults, param_names)
  return function(opts)
    opts = opts or {}
    if type(opts) ~= 'table' then
      error('crlab.loss.' .. name .. ' takes a table of options, got ' .. type(opts), 2)
    end
    local known = {reduction = true}
    for _, k in ipairs(param_names) do known[k] = true end
    for k in pairs(opts) do
      if not known[k] then
        error("crlab.loss." .. name .. ": unknown option '" .. tostring(k) .. "'", 2)
      end
    end
    local self = setmetatable({name = name, param_names = param_names}, Criterion)
    for _, k in ipairs(param_names) do
      local v = opts[k]
      if v == nil then v = defaults[k] end
      if type(v) ~= 'number' then
        error('crlab.loss.' .. name .. ': ' .. k .. ' must be a number, got ' .. type(v), 2)
      end
      self[k] = v
    end
    self.reduction = opts.reduction or 'mean'
    if reductions[self.reduction] == nil then
      error("crlab.loss." .. name .. ": reduction must be 'mean', 'sum' or 'none', got '" ..
            tostring(self.reduction) .. "'", 2)
    end
    self.spec = ffi.new('crl_loss_spec', kind, reductions[self.reduction],
                        self.alpha or 0, self.beta or 1, self.gamma or 0, self.smoothing or 0)
    self.output_buffer = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0})
    self.value = T.new(C.CRL_FLOAT32, C.CRL_CPU, {1})
    self.gradInput = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0})
    -- the C side validates alpha/beta/gamma/smoothing; surface it now
    local z = T.zeros(1, 2)
    local y = T.new(C.CRL_INT32, C.CRL_CPU, {1})
    local v = ffi.new('double[1]')
    if C.crl_loss_forward(v, nil, z, y, self.spec) ~= 0 then
      error('crlab.loss.' .. name .. ': ' .. core.last_error():gsub('^[%w_]+: ', ''), 2)
    end
    return self
  end
end

-- cross-entropy, optionally label-smoothed: -sum_j q_j log p_j
M.ce = make('ce', C.CRL_LOSS_CE, {smoothing = 0}, {'smoothing'})
M.CrossEntropy = M.ce
-- negative log likelihood ratio: -log(p_y / sum_{j~=y} p_j) (Zhu et al. 2018)
M.nllr = make('nllr', C.CRL_LOSS_NLLR, {}, {})
-- competing ratio loss: -beta log(p_y / (alpha + sum_{j~=y} p_j)) (Zhang et al. 2019)
M.crl = make('crl', C.CRL_LOSS_CRL, {alpha = 1.5, beta = 1}, {'alpha', 'beta'})
-- focal loss: -(1 - p_y)^gamma log p_y (Lin et al. 2017)
M.focal = make('focal', C.CRL_LOSS_FOCAL, {gamma = 2}, {'gamma'})

-- True for the criteria this module makes.
function M.isCriterion(v) return type(v) == 'table' and getmetatable(v) == Criterion end

-- The loss by name, for command lines: crlab.loss.byName('crl', {alpha = 2}).
function M.byName(name, opts)
  local f = ({ce = M.ce, nllr = M.nllr, crl = M.crl, focal = M.focal})[name]
  if f == nil then
    error("unknown loss '" .. tostring(name) .. "' (choose ce, nllr, crl or focal)", 2)
  end
  return f(opts)
end

return M
