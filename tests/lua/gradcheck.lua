-- gradcheck.lua -- central finite differences for a module, used by the
-- layer tests. The objective is L = sum(module(x) .* R) for a fixed random
-- R; its gradient with respect to x is module:backward(x, R), and with
-- respect to each parameter the accumulated gradParameters.
--
-- The kernels compute in float32, so the step h must be large enough for
-- the float rounding of L (about 1e-7 |L|) to stay below the tolerance,
-- yet small enough not to cross a kink of ReLU or max pooling: callers
-- with kinks keep inputs at least 2^-6 away from them and use h = 2^-10.
-- The comparison is relative to the largest gradient entry.
local crlab = require 'crlab'

local M = {}

local function objective(m, x, R)
  local y = m:forward(x)
  return (y * R):sum()
end

-- Returns the worst error relative to max |fd| for the input and for every
-- parameter, as {name = err}.
function M.check(m, x, opts)
  opts = opts or {}
  local h = opts.h or 2 ^ -7
  local before = opts.before or function() end
  before()
  local y = m:forward(x)
  local R = crlab.randn(y:size())
  m:zeroGradParameters()
  before()
  m:forward(x)
  local gx = m:backward(x, R):clone()
  local params, grads = m:parameters()
  local analytic = {}
  for i, g in ipairs(grads) do analytic[i] = g:clone() end

  local function fd_of(t)
    local flat = t:view(-1)
    local out = crlab.zeros(flat:numel())
    for i = 1, flat:numel() do
      local v = flat[i]
      flat[i] = v + h
      before()
      local up = objective(m, x, R)
      flat[i] = v - h
      before()
      local down = objective(m, x, R)
      flat[i] = v
      out[i] = (up - down) / (2 * h)
    end
    return out
  end

  local function rel_err(an, fd)
    local scale = math.max(fd:abs():max(), 1e-3)
    return (an:view(-1) - fd):abs():max() / scale
  end

  local errs = {}
  if not opts.skip_input then errs.input = rel_err(gx, fd_of(x)) end
  local names = m.paramNames or {}
  for i, p in ipairs(params) do
    errs[names[i] or ('param' .. i)] = rel_err(analytic[i], fd_of(p))
  end
  return errs
end

-- Random values on a 2^-6 grid with |v| >= 2^-5 (no kinks within h).
function M.away_from_zero(...)
  local t = crlab.randn(...)
  local flat = t:view(-1)
  for i = 1, flat:numel() do
    local v = math.floor(flat[i] * 64 + 0.5) / 64
    if math.abs(v) < 1 / 32 then v = (v < 0 and -1 or 1) * (1 / 32 + math.random(0, 8) / 64) end
    flat[i] = v
  end
  return t
end

-- Distinct values (a shuffled ramp on a 2^-6 grid) so max pooling has no ties.
function M.distinct(...)
  local t = crlab.zeros(...)
  local flat = t:view(-1)
  local perm = crlab.randperm(flat:numel())
  for i = 1, flat:numel() do flat[i] = (perm[i] - flat:numel() / 2) / 64 end
  return t
end

return M
