-- crlab.optim: optimisers over the parameter slab of model:getParameters(),
-- learning-rate schedules and gradient clipping. Each step is one fused C
-- call over the whole slab.
--
--   local params, grads, ranges = model:getParameters()
--   local opt = crlab.optim.sgd(params, grads, {momentum = 0.9, nesterov = true,
--                                               weightDecay = 5e-4, noDecay = {'bn', 'bias'}}, ranges)
--   opt:step(lr)
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

local M = {}

-- The per-element weight-decay coefficients: wd everywhere except the
-- ranges whose tag is listed in noDecay (e.g. {'bn', 'bias'}).
local function decay_slab(params, wd, noDecay, ranges)
  if not wd or wd == 0 then return nil end
  local d = T.new(C.CRL_FLOAT32, params.device, {params:numel()}):fill(wd)
  local skip = {}
  for _, tag in ipairs(noDecay or {}) do skip[tag] = true end
  for _, r in ipairs(ranges or {}) do
    if skip[r.tag] then d:narrow(1, r.offset + 1, r.count):zero() end
  end
  return d
end

local SGD = {}
SGD.__index = SGD

function M.sgd(params, grads, opts, ranges)
  opts = opts or {}
  local self = setmetatable({params = params, grads = grads, name = 'sgd'}, SGD)
  self.momentum = opts.momentum or 0
  self.dampening = opts.dampening or 0
  self.nesterov = opts.nesterov and 1 or 0
  self.decay = decay_slab(params, opts.weightDecay, opts.noDecay, ranges)
  if self.momentum ~= 0 then self.buf = T.new(C.CRL_FLOAT32, params.device, {params:numel()}) end
  self.steps = 0
  return self
end

function SGD:step(lr)
  check(C.crl_sgd_step(self.params, self.buf, self.grads, self.decay, lr, self.momentum, self.dampening,
                       self.nesterov))
  self.steps = self.steps + 1
end

function SGD:state()
  return {{'optim.momentum', self.buf}}, {steps = self.steps}
end

function SGD:loadState(tensors, meta)
  if self.buf then self.buf:copy(tensors['optim.momentum']) end
  self.steps = tonumber(meta.steps) or 0
end

local Adam = {}
Adam.__index = Adam

-- Adam (decoupled = false) or AdamW (decoupled = true, weight decay
-- applied to the weights directly, Loshchilov & Hutter 2019).
function M.adam(params, grads, opts, ranges)
  opts = opts or {}
  local self = setmetatable({params = params, grads = grads, name = opts.decoupled and 'adamw' or 'adam'}, Adam)
  self.beta1 = opts.beta1 or 0.9
  self.beta2 = opts.beta2 or 0.999
  self.eps = opts.eps or 1e-8
  self.decoupled = opts.decoupled and 1 or 0
  self.decay = decay_slab(params, opts.weightDecay, opts.noDecay, ranges)
  self.m = T.new(C.CRL_FLOAT32, params.device, {params:numel()})
  self.v = T.new(C.CRL_FLOAT32, params.device, {params:numel()})
  self.steps = 0
  return self
end

function M.adamw(params, grads, opts, ranges)
  opts = opts or {}
  opts.decoupled = true
  return M.adam(params, grads, opts, ranges)
end

function Adam:step(lr)
  self.steps = self.steps + 1
  check(C.crl_adam_step(self.params, self.m, self.v, self.grads, self.decay, lr, self.beta1, self.beta2,
                        self.eps, self.steps, self.decoupled))
end

function Adam:state()
  return {{'optim.m', self.m}, {'optim.v', self.v}}, {steps = self.steps}
end

function Adam:loadState(tensors, meta)
  self.m:copy(tensors['optim.m'])
  self.v:copy(tensors['optim.v'])
  self.steps = tonumber(meta.steps) or 0
end

-- Scales grads so their global L2 norm is at most maxNorm; returns the
-- norm before clipping.
function M.clipGradNorm(grads, maxNorm)
  local ss = ffi.new('double[1]')
  check(C.crl_tensor_sumsq(ss, grads))
  local norm = math.sqrt(ss[0])
  if maxNorm and norm > maxNorm then grads:mul_(maxNorm / (norm + 1e-6)) end
  return norm
end

-- A learning-rate schedule as a function of progress in epochs (a real
-- number: epoch - 1 + fraction of the epoch done):
--   {kind = 'multistep', lr = 0.1, milestones = {91, 136}, gamma = 0.1}
--   {kind = 'cosine', lr = 0.1, epochs = 200, min = 0}
--   {kind = 'constant', lr = 0.01}
-- warmup = E ramps linearly up to the schedule over the first E epochs;
-- stepSize (1 / steps per epoch) makes the first step's rate lr * stepSize / E
-- rather than 0.
function M.schedule(s)
  local kind, base = s.kind or 'constant', s.lr
  if type(base) ~= 'number' or base < 0 then error('schedule: lr must be a non-negative number', 2) end
  local f
  if kind == 'constant' then
    f = function() return base end
  elseif kind == 'multistep' then
    local ms, gamma = s.milestones or {}, s.gamma or 0.1
    f = function(e)
      local lr = base
      for _, m in ipairs(ms) do if e >= m then lr = lr * gamma end end
      return lr
    end
  elseif kind == 'cosine' then
    local total, lo = s.epochs, s.min or 0
    if type(total) ~= 'number' or total <= 0 then error('schedule: cosine needs epochs > 0', 2) end
    f = function(e) return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * math.min(e, total) / total)) end
  else
    error("schedule: unknown kind '" .. tostring(kind) .. "' (constant, multistep, cosine)", 2)
  end
  local warm = s.warmup or 0
  if warm > 0 then
    return function(e)
      if e < warm then return f(e) * math.min(1, (e + (s.stepSize or 0)) / warm) end
      return f(e)
    end
  end
  return f
end

return M
