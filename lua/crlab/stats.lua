-- crlab.stats: the few statistics a suite's report needs, in double
-- precision: mean, sample standard deviation, the regularized incomplete
-- beta function, Student's t distribution and Welch's two-sample t-test.
--
--   local s = require 'crlab.stats'
--   s.mean{0.91, 0.92}, s.std{0.91, 0.92}          -- std: n - 1 in the denominator
--   s.t_cdf(2.1, 7.5)                               -- P(T <= 2.1), T ~ Student t, 7.5 degrees of freedom
--   local w = s.welch({...}, {...})                 -- {diff, t, df, p} (p two-sided), or nil under 2 values
--
-- The incomplete beta function is evaluated by its continued fraction
-- (modified Lentz), on the side of the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
-- where it converges fast; tests/ref/t_ref.txt holds scipy's values it is
-- checked against.
local ffi = require 'ffi'
pcall(ffi.cdef, 'double lgamma(double x);')
local lgamma = ffi.C.lgamma

local M = {}

function M.mean(xs)
  local s = 0
  for i = 1, #xs do s = s + xs[i] end
  return s / #xs
end

-- The sample standard deviation (n - 1); nil for fewer than 2 values.
function M.std(xs)
  local n = #xs
  if n < 2 then return nil end
  local m, s = M.mean(xs), 0
  for i = 1, n do s = s + (xs[i] - m) ^ 2 end
  return math.sqrt(s / (n - 1))
end

local EPS, TINY, MAXIT = 1e-15, 1e-300, 500

-- The continued fraction of I_x(a, b) (Numerical Recipes' betacf).
local function betacf(a, b, x)
  local qab, qap, qam = a + b, a + 1, a - 1
  local c, d = 1, 1 - qab * x / qap
  if math.abs(d) < TINY then d = TINY end
  d = 1 / d
  local h = d
  for m = 1, MAXIT do
    local m2 = 2 * m
    local aa = m * (b - m) * x / ((qam + m2) * (a + m2))
    d = 1 + aa * d
    if math.abs(d) < TINY then d = TINY end
    c = 1 + aa / c
    if math.abs(c) < TINY then c = TINY end
    d = 1 / d
    h = h * d * c
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
    d = 1 + aa * d
    if math.abs(d) < TINY then d = TINY end
    c = 1 + aa / c
    if math.abs(c) < TINY then c = TINY end
    d = 1 / d
    local del = d * c
    h = h * del
    if math.abs(del - 1) < EPS then return h end
  end
  error(string.format('crlab.stats: the incomplete beta function did not converge (a %g, b %g, x %g)', a, b, x), 3)
end

-- The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1].
function M.betainc(x, a, b)
  if not (a > 0 and b > 0) or not (x >= 0 and x <= 1) then
    error(string.format('crlab.stats.betainc: needs a, b > 0 and x in [0, 1], got x %s, a %s, b %s', tostring(x),
                        tostring(a), tostring(b)), 2)
  end
  if x == 0 or x == 1 then return x end
  local lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * math.log(x) + b * math.log(1 - x)
  if x < (a + 1) / (a + b + 2) then return math.exp(lbt) * betacf(a, b, x) / a end
  return 1 - math.exp(lbt) * betacf(b, a, 1 - x) / b
end

-- P(|T| >= |t|) for T ~ Student t with df > 0 degrees of freedom.
function M.t_two_sided(t, df)
  if not (df > 0) then error('crlab.stats.t_two_sided: df must be > 0, got ' .. tostring(df), 2) end
  if t ~= t then return 0 / 0 end
  if math.abs(t) == math.huge then return 0 end
  return M.betainc(df / (df + t * t), df / 2, 0.5)
end

-- P(T <= t) for T ~ Student t with df > 0 degrees of freedom.
function M.t_cdf(t, df)
  local tail = M.t_two_sided(t, df) / 2
  return t > 0 and 1 - tail or tail
end

-- Welch's t-test of mean(a) - mean(b) (unequal variances, the
-- Welch-Satterthwaite degrees of freedom): {diff, t, df, p}, p two-sided;
-- nil when either sample has fewer than 2 values. Two samples without
-- spread give p = 1 for equal means and 0 otherwise.
function M.welch(a, b)
  local na, nb = #a, #b
  if na < 2 or nb < 2 then return nil end
  local diff = M.mean(a) - M.mean(b)
  local va, vb = M.std(a) ^ 2 / na, M.std(b) ^ 2 / nb
  local se2 = va + vb
  if se2 == 0 then
    return {diff = diff, t = diff == 0 and 0 or diff / 0, df = na + nb - 2, p = diff == 0 and 1 or 0}
  end
  local df = se2 ^ 2 / (va ^ 2 / (na - 1) + vb ^ 2 / (nb - 1))
  local t = diff / math.sqrt(se2)
  return {diff = diff, t = t, df = df, p = M.t_two_sided(t, df)}
end

return M
