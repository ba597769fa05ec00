-- crlab.explore: its curves, sweeps and per-class tables against the
-- losses' closed forms written out here in double precision (independent
-- of the C kernels the explorer calls), loss specs and their errors, the
-- run views on a metrics.jsonl written here and on a tiny real training
-- run, and the plots when gnuplot is installed.
local t = require 'tap'
local crlab = require 'crlab'
local ex = require 'crlab.explore'
local json = require 'crlab.json'
local plot = require 'crlab.plot'

t.eq(crlab.explore, ex, "crlab.explore is the module (loaded on first use, as at the prompt)")

-- the explorer prints its tables; keep TAP's stdout clean and look at them
local printed = {}
local real_print, real_write = print, io.write
local function capture(fn)
  printed = {}
  _G.print = function(...)
    local parts = {}
    for i = 1, select('#', ...) do parts[i] = tostring(select(i, ...)) end
    printed[#printed + 1] = table.concat(parts, '\t')
  end
  io.write = function(...)
    for i = 1, select('#', ...) do printed[#printed + 1] = tostring(select(i, ...)) end
  end
  local ok, res = pcall(fn)
  _G.print, io.write = real_print, real_write
  if not ok then error(res, 0) end
  return res, table.concat(printed, '\n')
end

---------------------------------------------------------------------------
-- closed forms, p = p_y, the other K - 1 classes equal

local closed = {}
function closed.ce(p) return -math.log(p), p - 1 end
function closed.nllr(p) return -math.log(p / (1 - p)), -1 end
function closed.crl(p, _, a, b)
  local v = -b * math.log(p / (a + 1 - p))
  return v, b * (a + 1) / (a + 1 - p) * (p - 1)
end
function closed.focal(p, _, g)
  local v = -(1 - p) ^ g * math.log(p)
  local scale = (1 - p) ^ g - (g > 0 and g * (1 - p) ^ (g - 1) * p * math.log(p) or 0)
  return v, scale * (p - 1)
end
function closed.ls(p, K, e)
  local po = (1 - p) / (K - 1)
  local v = -(1 - e + e / K) * math.log(p) - e * (K - 1) / K * math.log(po)
  return v, p - (1 - e) - e / K
end

-- the loss parameters reach the kernels as float32 (crl_loss_spec)
local function f32(v) return crlab.tensor({v}):totable()[1] end

-- p_y in double from the float32 logit the kernels saw (the others are 0)
local function p_of(z, K) return 1 / (1 + (K - 1) * math.exp(-z)) end

local cases = {
  {'ce', 'ce', function(p, K) return closed.ce(p, K) end},
  {'nllr', 'nllr', function(p, K) return closed.nllr(p, K) end},
  {'crl{alpha=1.5}', 'crl{alpha=1.5,beta=1}', function(p, K) return closed.crl(p, K, 1.5, 1) end},
  {'crl{alpha=2,beta=0.5}', 'crl{alpha=2,beta=0.5}', function(p, K) return closed.crl(p, K, 2, 0.5) end},
  {'crl{alpha=0}', 'crl{alpha=0,beta=1}', function(p, K) return closed.crl(p, K, 0, 1) end},
  {'focal{gamma=2}', 'focal{gamma=2}', function(p, K) return closed.focal(p, K, 2) end},
  {'focal{gamma=0.5}', 'focal{gamma=0.5}', function(p, K) return closed.focal(p, K, 0.5) end},
  {'ce{smoothing=0.1}', 'ce{smoothing=0.1}', function(p, K) return closed.ls(p, K, f32(0.1)) end},
  {'ce{eps=0.25}', 'ce{smoothing=0.25}', function(p, K) return closed.ls(p, K, 0.25) end},
}

local function worst_rel(got, want, atol)
  local w = 0
  for i = 1, #want do
    local d = math.abs(got[i] - want[i]) / (atol + math.abs(want[i]))
    if not (d <= w) then w = d end -- NaN counts as worst
  end
  return w
end

for _, K in ipairs({10, 3}) do
  local specs = {}
  for i, c in ipairs(cases) do specs[i] = c[1] end
  local r = ex.curve{losses = specs, K = K, points = 199, range = {0.005, 0.995}, quiet = true}
  t.eq(#r.x, 199, 'curve: 199 points')
  for i, c in ipairs(cases) do
    local e = r.losses[i]
    t.eq(e.label, c[2], "spec '" .. c[1] .. "' is labelled " .. c[2])
    local wv, wg, ww = {}, {}, {}
    local ce_v, ce_g = {}, {}
    for k = 1, #r.x do
      local p = p_of(r.z_y[k], K)
      wv[k], wg[k] = c[3](p, K)
      ce_v[k], ce_g[k] = closed.ce(p)
      ww[k] = wg[k] / ce_g[k]
    end
    local ev, eg, ew = worst_rel(e.value, wv, 1e-6), worst_rel(e.grad, wg, 1e-7), worst_rel(e.weight, ww, 1e-6)
    t.ok(ev < 1e-5 and eg < 1e-5 and ew < 1e-5,
         string.format('curve K=%d %s: value, dL/dz_y and w match the closed form (worst %.1e %.1e %.1e)', K,
                       c[2], ev, eg, ew))
  end
  -- CRL's weight as the paper states it: beta (alpha + 1) / (alpha + 1 - p_y)
  local e, worst = r.losses['crl{alpha=2,beta=0.5}'], 0
  for k = 1, #r.x do
    local p = p_of(r.z_y[k], K)
    worst = math.max(worst, math.abs(e.weight[k] - 0.5 * 3 / (3 - p)) / (0.5 * 3 / (3 - p)))
  end
  t.ok(worst < 1e-6, string.format('K=%d: w of CRL(2, 0.5) is beta(alpha+1)/(alpha+1-p_y) (worst %.1e)', K, worst))
  -- the grid: p_y asked and p_y seen agree to float32's rounding of z_y
  local far = 0
  for k = 1, #r.x do far = math.max(far, math.abs(p_of(r.z_y[k], K) - r.x[k]) / r.x[k]) end
  t.ok(far < 1e-5, string.format('K=%d: the logits give the p_y asked (worst relative %.1e)', K, far))
  t.close(r.p_y[100], r.x[100], 1e-5, 'p_y (softmax of the logits) is x')
  t.eq(r.losses.ce.weight[1], 1, 'w of CE is 1')
end

-- over the logit margin: z_y = x, the others 0
do
  local r = ex.curve{losses = {'crl', 'nllr'}, over = 'margin', K = 5, points = 31, quiet = true}
  t.eq(r.x[1], -5, 'margin grid starts at -5 by default')
  t.eq(r.x[31], 10, 'and ends at 10')
  local worst = 0
  for k = 1, #r.x do
    worst = math.max(worst, math.abs(r.z_y[k] - r.x[k]) / (1 + math.abs(r.x[k])))
    local p = math.exp(r.z_y[k]) / (math.exp(r.z_y[k]) + 4)
    local v = closed.crl(p, 5, 1.5, 1)
    local vn = closed.nllr(p, 5)
    worst = math.max(worst, math.abs(r.losses[1].value[k] - v) / (1e-6 + math.abs(v)),
                     math.abs(r.losses[2].value[k] - vn) / (1e-6 + math.abs(vn)))
  end
  t.ok(worst < 1e-5, string.format('over the margin: z_y is x, CRL and NLLR values match the closed forms ' ..
                                   '(worst %.1e)', worst))
end

---------------------------------------------------------------------------
-- sweeps

do
  local s = ex.sweep{loss = 'crl', param = 'alpha', values = {1, 1.5, 2, 4}, what = 'weight', points = 21,
                     quiet = true}
  t.eq(#s.losses, 4, 'sweep over alpha: one curve per value')
  t.eq(s.losses[2].label, 'alpha=1.5', 'each labelled by its value')
  local worst = 0
  for i, a in ipairs({1, 1.5, 2, 4}) do
    local e = s.losses[i]
    for k = 1, #s.x do
      local p = p_of(e.z_y[k], 10)
      worst = math.max(worst, math.abs(e.weight[k] - (a + 1) / (a + 1 - p)) / ((a + 1) / (a + 1 - p)))
      local v = closed.crl(p, 10, a, 1)
      worst = math.max(worst, math.abs(e.value[k] - v) / (1e-6 + math.abs(v)))
    end
  end
  t.ok(worst < 1e-5, string.format('sweep alpha: values and w = (alpha+1)/(alpha+1-p_y) (worst %.1e)', worst))
  local c = ex.curve{losses = {'crl{alpha=4}'}, points = 21, quiet = true}
  t.eq(c.losses[1].value[7], s.losses[4].value[7], 'a sweep point equals the curve of that spec')

  local b = ex.sweep{loss = 'crl{alpha=2}', param = 'beta', values = {1, 2}, points = 11, quiet = true}
  worst = 0
  for k = 1, 11 do
    worst = math.max(worst, math.abs(b.losses[2].value[k] - 2 * b.losses[1].value[k]) / math.abs(b.losses[1].value[k]),
                     math.abs(b.losses[2].weight[k] - 2 * b.losses[1].weight[k]) / b.losses[1].weight[k])
  end
  t.ok(worst < 1e-6, string.format('sweep beta: beta scales value and w, alpha kept at 2 (worst %.1e)', worst))
  t.eq(b.losses[1].spec.params.alpha, 2, 'sweep keeps the other parameters of the spec')

  local g = ex.sweep{loss = 'focal', param = 'gamma', values = {0, 1, 3}, points = 11, quiet = true}
  worst = 0
  for i, gam in ipairs({0, 1, 3}) do
    for k = 1, 11 do
      local v, gr = closed.focal(p_of(g.losses[i].z_y[k], 10), 10, gam)
      worst = math.max(worst, math.abs(g.losses[i].value[k] - v) / (1e-6 + v),
                       math.abs(g.losses[i].grad[k] - gr) / (1e-7 + math.abs(gr)))
    end
  end
  t.ok(worst < 1e-5, string.format('sweep gamma: focal values and gradients (worst %.1e)', worst))

  local e = ex.sweep{loss = 'ce', param = 'eps', values = {0, 0.1, 0.3}, points = 11, quiet = true}
  t.eq(e.param, 'smoothing', "sweep: 'eps' is the smoothing")
  t.eq(e.losses[3].label, 'smoothing=0.3', 'labelled smoothing=')
  worst = 0
  for i, eps in ipairs({0, 0.1, 0.3}) do
    for k = 1, 11 do
      local v, gr = closed.ls(p_of(e.losses[i].z_y[k], 10), 10, f32(eps))
      worst = math.max(worst, math.abs(e.losses[i].value[k] - v) / (1e-6 + v),
                       math.abs(e.losses[i].grad[k] - gr) / (1e-7 + math.abs(gr)))
    end
  end
  t.ok(worst < 1e-5, string.format('sweep eps: label-smoothed CE values and gradients (worst %.1e)', worst))

  local kk = ex.sweep{loss = 'ce{smoothing=0.2}', param = 'K', values = {2, 10, 1000}, points = 11, quiet = true}
  worst = 0
  for i, K in ipairs({2, 10, 1000}) do
    t.eq(kk.losses[i].K, K, 'sweep K: entry ' .. i .. ' has K = ' .. K)
    for k = 1, 11 do
      local v = closed.ls(p_of(kk.losses[i].z_y[k], K), K, f32(0.2))
      worst = math.max(worst, math.abs(kk.losses[i].value[k] - v) / (1e-6 + v))
    end
  end
  t.ok(worst < 1e-5, string.format('sweep K: label-smoothed CE depends on K as its closed form (worst %.1e)', worst))
end

---------------------------------------------------------------------------
-- specs

do
  local s = ex.spec(' crl { alpha = 2 , beta=0.5 } ')
  t.eq(s.name, 'crl', 'spec: name with spaces')
  t.eq(s.params.alpha, 2, 'spec: alpha read')
  t.eq(s.params.beta, 0.5, 'spec: beta read')
  t.eq(ex.spec('crl').label, 'crl{alpha=1.5,beta=1}', "spec: 'crl' takes crlab.loss's defaults")
  t.eq(ex.spec('ce').label, 'ce', "spec: 'ce' (smoothing 0 left out of the label)")
  t.eq(ex.spec('ce{eps=0.1}').label, 'ce{smoothing=0.1}', 'spec: eps is the smoothing')
  t.eq(ex.spec({name = 'focal', gamma = 1}).label, 'focal{gamma=1}', 'spec: a table')
  t.eq(ex.spec({'crl', alpha = 3}).label, 'crl{alpha=3,beta=1}', 'spec: a table with the name first')
  t.eq(ex.spec(crlab.loss.crl{alpha = 3, beta = 2}).label, 'crl{alpha=3,beta=2}', 'spec: a crlab.loss criterion')
  t.eq(ex.spec('crl{alpha=1e-1}').params.alpha, 0.1, 'spec: exponent notation')
  t.eq(ex.curve{losses = crlab.loss.focal{gamma = 1}, points = 3, quiet = true}.losses[1].label, 'focal{gamma=1}',
       'curve: one criterion as the losses')
  t.eq(#ex.curve{losses = 'nllr', points = 3, quiet = true}.losses, 1, 'curve: one spec string as the losses')
  t.eq(ex.spec('nllr{}').label, 'nllr', 'spec: empty braces')
  local bad = {
    {'foo', "unknown loss 'foo' (choose ce, nllr, crl or focal)"},
    {'crl{gamma=2}', "crl has no parameter 'gamma' (it takes alpha, beta)"},
    {'nllr{alpha=1}', "nllr has no parameter 'alpha' (it takes none)"},
    {'crl{alpha=x}', "alpha must be a finite number, got 'x'"},
    {'crl{alpha=inf}', 'alpha must be a finite number'},
    {'crl{alpha=nan}', 'alpha must be a finite number'},
    {'crl{alpha=-1}', 'crl alpha = -1 must be finite and >= 0'},
    {'crl{beta=0}', 'crl beta = 0 must be finite and > 0'},
    {'ce{smoothing=1}', 'ce smoothing = 1 must be in [0, 1)'},
    {'focal{gamma=-1}', 'focal gamma = -1 must be finite and >= 0'},
    {'crl{alpha=1,alpha=2}', 'gives alpha twice'},
    {'ce{eps=0.1,smoothing=0.2}', 'gives smoothing twice'},
    {'crl{alpha}', "'alpha' is not key=value"},
    {'crl{alpha=1,}', "'' is not key=value"},
    {'crl(alpha=1)', "expected {key=value,...} after 'crl'"},
    {'crl{alpha=1', "expected {key=value,...} after 'crl'"},
    {'', 'is not a name or name{key=value,...}'},
    {'1crl', 'is not a name or name{key=value,...}'},
    {"ce{smoothing=(function() os.exit(3) end)()}", 'is not key=value'},
    {'os.exit(3)', "expected {key=value,...} after 'os'"},
    {{name = 'crl', reduction = 'sum'}, "crl has no parameter 'reduction'"},
    {{alpha = 1}, 'a loss spec table needs name'},
    {{name = 'crl', alpha = '2'}, 'alpha must be a finite number, got 2'},
    {42, 'a loss is a name'},
  }
  for _, b in ipairs(bad) do
    t.errors(function() ex.spec(b[1]) end, b[2], 'spec ' .. (type(b[1]) == 'string' and "'" .. b[1] .. "'" or
                                                          json.encode(b[1])) .. ' is refused')
  end
  t.errors(function() ex.curve{losses = {'crl', 'crl{alpha=1.5}'}, quiet = true} end, 'is listed twice',
           'curve: the same loss twice is refused')
  t.errors(function() ex.curve{losses = {'crl{gamma=1}'}} end, "crlab.explore.curve: loss spec 'crl{gamma=1}'",
           'curve: a bad spec names the function and the spec')
end

-- bad options
do
  local bad = {
    {function() ex.curve{lossez = {'ce'}} end, "unknown option 'lossez'"},
    {function() ex.curve{K = 1} end, 'K (the number of classes) must be an integer in 2..100000, got 1'},
    {function() ex.curve{K = 2.5} end, 'must be an integer'},
    {function() ex.curve{K = 100000, points = 1000} end, 'points x K = 1000 x 100000 logits is more than 2^24'},
    {function() ex.curve{points = 1} end, 'points must be an integer in 2..100000'},
    {function() ex.curve{range = {0, 0.5}} end, 'range must be {lo, hi} with lo < hi, inside (0, 1)'},
    {function() ex.curve{range = {0.6, 0.5}} end, 'range must be'},
    {function() ex.curve{over = 'logit'} end, "over must be 'py' or 'margin'"},
    {function() ex.curve{what = 'loss'} end, "what must be 'value', 'weight' or 'grad'"},
    {function() ex.curve('ce') end, 'expects a table of options'},
    {function() ex.curve{losses = {}} end, 'losses must be a non-empty list'},
    {function() ex.sweep{param = 'alpha', values = {1}} end, 'needs loss ='},
    {function() ex.sweep{loss = 'crl', values = {1}} end, 'needs param ='},
    {function() ex.sweep{loss = 'crl', param = 'gamma', values = {1}} end,
     "crl has no parameter 'gamma' (it takes alpha, beta or K)"},
    {function() ex.sweep{loss = 'nllr', param = 'alpha', values = {1}} end, 'it takes only K'},
    {function() ex.sweep{loss = 'crl', param = 'alpha', values = {}} end, 'values must be a non-empty list'},
    {function() ex.sweep{loss = 'crl', param = 'alpha', values = {1, 'x'}} end, 'values[2] must be a finite number'},
    {function() ex.sweep{loss = 'crl', param = 'alpha', values = {-1}} end, 'crl alpha = -1 must be finite and >= 0'},
    {function() ex.sweep{loss = 'crl', param = 'K', values = {1}} end, 'K (the number of classes) must be'},
  }
  for _, b in ipairs(bad) do t.errors(b[1], b[2], 'refused: ' .. b[2]) end
end

---------------------------------------------------------------------------
-- one logit vector: gradients per class against the closed forms and
-- against finite differences of the forward pass

local function softmax(z)
  local m, s, p = -math.huge, 0, {}
  for _, v in ipairs(z) do m = math.max(m, v) end
  for i, v in ipairs(z) do p[i] = math.exp(v - m); s = s + p[i] end
  for i = 1, #p do p[i] = p[i] / s end
  return p
end

do
  local z, y = {1.5, -0.25, 2.0, 0.5, -1.0}, 2
  local r, out = capture(function() return ex.logits(z, y, {'ce', 'nllr', 'crl{alpha=1.5,beta=2}', 'focal{gamma=2}',
                                                              'ce{smoothing=0.1}'}) end)
  local p = softmax(z)
  local py, S = p[y + 1], 1 - p[y + 1]
  local function onehot(j) return j == y + 1 and 1 or 0 end
  local want = {
    ce = function(j) return p[j] - onehot(j) end,
    nllr = function(j) return 1 / S * (p[j] - onehot(j)) end,
    ['crl{alpha=1.5,beta=2}'] = function(j) return 2 * 2.5 / (2.5 - py) * (p[j] - onehot(j)) end,
    ['focal{gamma=2}'] = function(j) return (S ^ 2 - 2 * S * py * math.log(py)) * (p[j] - onehot(j)) end,
    ['ce{smoothing=0.1}'] = function(j) return p[j] - ((1 - f32(0.1)) * onehot(j) + f32(0.1) / 5) end,
  }
  local value = {ce = -math.log(py), nllr = -math.log(py / S),
                 ['crl{alpha=1.5,beta=2}'] = -2 * math.log(py / (1.5 + S)),
                 ['focal{gamma=2}'] = -S ^ 2 * math.log(py)}
  local ls = 0
  for j = 1, 5 do ls = ls - (0.9 * onehot(j) + 0.02) * math.log(p[j]) end
  value['ce{smoothing=0.1}'] = ls
  for label, g in pairs(want) do
    local e = r.losses[label]
    local worst = 0
    for j = 1, 5 do worst = math.max(worst, math.abs(e.grad[j] - g(j)) / (1e-7 + math.abs(g(j)))) end
    t.ok(worst < 1e-5, string.format('logits: %s gradient per class matches the closed form (worst %.1e)', label,
                                     worst))
    t.close(e.value, value[label], 1e-6, 'logits: ' .. label .. ' value matches the closed form')
    t.close(e.weight, g(y + 1) / (py - 1), 1e-5, 'logits: ' .. label .. ' w at the label')
    -- central differences of the loss's forward pass (float32 logits, double sums)
    local crit = e.spec:criterion()
    local fd_worst = 0
    for j = 1, 5 do
      local h = 1e-2
      local zp, zm = {}, {}
      for k = 1, 5 do zp[k], zm[k] = z[k], z[k] end
      zp[j], zm[j] = z[j] + h, z[j] - h
      local fp = crit:forward(crlab.tensor({zp}), {y}):totable()[1]
      local fm = crit:forward(crlab.tensor({zm}), {y}):totable()[1]
      fd_worst = math.max(fd_worst, math.abs((fp - fm) / (2 * h) - e.grad[j]))
    end
    t.ok(fd_worst < 2e-3, string.format('logits: %s gradient agrees with central differences (worst %.1e)', label,
                                        fd_worst))
  end
  local sum = 0
  for j = 1, 5 do sum = sum + r.p[j] end
  t.close(sum, 1, 1e-6, 'logits: p sums to 1')
  t.close(r.p[1], p[1], 1e-6, 'logits: p is the softmax')
  t.ok(out:find('* 2', 1, true) ~= nil and out:find('crl{alpha=1.5,beta=2}', 1, true) ~= nil and
       out:find('w at y', 1, true) ~= nil, 'logits: prints the table with the label marked')
  local r2 = capture(function() return ex.logits(crlab.tensor(z), y, 'crl', {quiet = true}) end)
  t.eq(#printed, 0, 'logits: quiet prints nothing')
  t.close(r2.losses[1].grad[4], r.losses.ce.grad[4] * 2.5 / (2.5 - py), 1e-5, 'logits: a (K) tensor and one spec')
  local r3 = ex.logits(crlab.tensor({z}), y, nil, {quiet = true})
  t.eq(#r3.losses, 5, 'logits: a (1, K) tensor, the five default losses')
  t.errors(function() ex.logits(z, 5) end, 'y must be the label, an integer in 0..4', 'logits: label out of range')
  t.errors(function() ex.logits(z, 1.5) end, 'y must be the label', 'logits: fractional label')
  t.errors(function() ex.logits({1}, 0) end, 'z must hold at least 2 logits', 'logits: one logit')
  t.errors(function() ex.logits({1, 0 / 0}, 0) end, 'z[2] must be a finite number', 'logits: NaN logit')
  t.errors(function() ex.logits({1, 'a'}, 0) end, 'z[2] must be a finite number', 'logits: a string logit')
  t.errors(function() ex.logits(crlab.zeros(2, 3), 0) end, 'z must be a (K) or (1, K) tensor', 'logits: a matrix')
  t.errors(function() ex.logits('1,2', 0) end, 'z must be a list of K logits', 'logits: a string')
end

-- printing: the compact table and the short summary at the prompt
do
  local r, out = capture(function() return ex.curve{losses = {'ce', 'crl'}, points = 99} end)
  t.ok(out:find('crl{alpha=1.5,beta=1}', 1, true) ~= nil and out:find('0.99', 1, true) ~= nil,
       'curve prints a table naming the losses')
  local rows = 0
  for line in out:gmatch('[^\n]+') do if line:match('^0%.') then rows = rows + 1 end end
  t.eq(rows, 11, 'curve prints 11 of its 99 rows')
  t.ok(tostring(r):find('^crlab.explore.curve: ce, crl{alpha=1.5,beta=1} over py %(99 points, K = 10%)') ~= nil,
       'a curve shows as one line at the prompt: ' .. tostring(r))
end

---------------------------------------------------------------------------
-- trained runs: a metrics.jsonl written here

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p '" .. tmp .. "'") == 0)
local write = require('testio').write
local function mkrun(name, recs)
  local d = tmp .. '/' .. name
  os.execute("mkdir -p '" .. d .. "'")
  local lines = {}
  for i, r in ipairs(recs) do lines[i] = json.encode(r) end
  write(d .. '/metrics.jsonl', table.concat(lines, '\n') .. '\n')
  return d
end
local function bins(fill)
  local b = {}
  for i = 1, 15 do b[i] = {0, 0, 0} end
  for i, v in pairs(fill) do b[i] = v end
  return b
end

local function rec(epoch, acc, ece, norm, fill)
  return {epoch = epoch, test_acc = acc, test_ece = ece, test_logit_norm = norm, test_bins = bins(fill)}
end
local run_a = mkrun('a', {
  rec(1, 0.5, 0.2, 3.5, {[8] = {10, 5, 4}, [15] = {2, 2, 2}}),
  rec(2, 0.8, 0.1, 5.25, {[14] = {8, 7.2, 6}, [15] = {4, 4, 4}}),
  rec(3, 0.7, 0.05, 7, {[10] = {6, 3.9, 3}, [15] = {6, 6, 5}}),
})
local run_b = mkrun('b', {
  rec(1, 0.6, 0.3, 10, {[1] = {1, 0.05, 0}, [12] = {3, 2.3, 3}}),
  rec(2, 0.9, 0.2, 40, {[12] = {4, 3, 2}, [15] = {5, 5, 5}}),
})

do
  local r, out = capture(function() return ex.reliability(run_a) end)
  local b = r.runs[1].bins
  t.eq(r.runs[1].epoch, 3, 'reliability: the last epoch by default')
  t.eq(#b, 15, 'reliability: 15 bins')
  t.close(b[10].confidence, 3.9 / 6, 1e-12, 'reliability: mean confidence = confidence_sum / count')
  t.close(b[10].accuracy, 0.5, 1e-12, 'reliability: accuracy = correct / count')
  t.close(b[10].lo, 9 / 15, 1e-12, 'reliability: bin edges')
  t.ok(b[3].confidence ~= b[3].confidence, 'reliability: an empty bin has no mean (NaN)')
  t.eq(r.runs[1].label, 'a', 'reliability: a run without a checkpoint is labelled by its folder')
  t.eq(r.runs[1].ece, 0.05, 'reliability: the run\'s ECE is carried')
  t.ok(out:find('0.600-0.667', 1, true) ~= nil and out:find('ECE 0.05', 1, true) ~= nil,
       'reliability prints the non-empty bins and the ECE')
  local r1 = ex.reliability(run_a, {epoch = 1, quiet = true})
  t.eq(r1.runs[1].bins[8].count, 10, 'reliability: epoch = 1')
  local rb = ex.reliability({run_a, run_b}, {epoch = 'best', quiet = true})
  t.eq(rb.runs[1].epoch, 2, "reliability: epoch = 'best' (highest test accuracy) of run a")
  t.eq(rb.runs[2].epoch, 2, "reliability: epoch = 'best' of run b")
  local m = ex.reliability({run_a, run_b}, {epoch = 2, merge = true, quiet = true})
  t.eq(#m.runs, 1, 'reliability: merge = true gives one curve')
  t.eq(m.runs[1].bins[15].count, 9, 'reliability: merged counts add')
  t.close(m.runs[1].bins[15].accuracy, 1, 1e-12, 'reliability: merged accuracy from the summed correct')
  t.close(m.runs[1].bins[12].confidence, 0.75, 1e-12, 'reliability: merged confidence from the summed sums')
  local l = ex.reliability({run_a, run_b}, {labels = {'CE', 'CRL'}, quiet = true})
  t.eq(l.runs[2].label, 'CRL', 'reliability: labels given')

  local c = ex.confidence({run_a, run_b}, {quiet = true})
  t.eq(c.runs[1].counts[15], 6, 'confidence: the counts of the last epoch')
  t.eq(c.runs[2].counts[12], 4, 'confidence: of each run')
  t.close(c.runs[2].fractions[15], 5 / 9, 1e-12, 'confidence: fractions of the test examples')
  local _, cout = capture(function() return ex.confidence(run_b, {epoch = 1, fraction = true}) end)
  t.ok(cout:find('0.0000', 1, true) ~= nil and cout:find('0.7500', 1, true) ~= nil,
       'confidence prints the fractions with fraction = true')

  local n, nout = capture(function() return ex.logitNorm({run_a, run_b}) end)
  t.eq(#n.runs[1].epochs, 3, 'logitNorm: every epoch of run a')
  t.eq(n.runs[1].norm[2], 5.25, 'logitNorm: the norms')
  t.eq(n.runs[2].norm[2], 40, 'logitNorm: of run b')
  t.ok(nout:find('3  ', 1, true) ~= nil and nout:find('7', 1, true) ~= nil, 'logitNorm prints a row per epoch')
  t.ok(tostring(n):find('logitNorm: 2 run') ~= nil, 'logitNorm shows as one line at the prompt')
end

-- the runs' errors
do
  local old = mkrun('old', {{epoch = 1, test_acc = 0.5, test_ece = 0.1}, {epoch = 2, test_acc = 0.6, test_ece = 0.1}})
  local badbins = mkrun('badbins', {{epoch = 1, test_bins = {{1, 2}}, test_logit_norm = 'x'}})
  local empty = tmp .. '/empty'
  os.execute("mkdir -p '" .. empty .. "'")
  write(empty .. '/metrics.jsonl', '')
  local broken = tmp .. '/broken'
  os.execute("mkdir -p '" .. broken .. "'")
  write(broken .. '/metrics.jsonl', '{"epoch":1,"test_acc":0.5}\n{"epoch":2,"te\n')
  local nofile = tmp .. '/nometrics'
  os.execute("mkdir -p '" .. nofile .. "'")
  local cases_err = {
    {function() ex.reliability(tmp .. '/none') end, "there is no run folder '" .. tmp .. "/none'"},
    {function() ex.reliability(nofile) end, "'" .. nofile .. "' is not a run folder: it holds no metrics.jsonl"},
    {function() ex.logitNorm({run_a, nofile}) end, 'is not a run folder'},
    {function() ex.confidence(empty) end, empty .. '/metrics.jsonl holds no epochs yet'},
    {function() ex.reliability(broken) end, broken .. '/metrics.jsonl line 2 is not a metrics record'},
    {function() ex.reliability(old) end, old .. '/metrics.jsonl: epoch 2 has no test_bins (the run was written ' ..
                                        'before the trainer recorded it'},
    {function() ex.confidence(old, {epoch = 1}) end, 'epoch 1 has no test_bins'},
    {function() ex.logitNorm(old) end, 'epoch 1 has no test_logit_norm'},
    {function() ex.reliability(badbins) end, 'test_bins is not a list of [count, confidence_sum, correct] triples'},
    {function() ex.logitNorm(badbins) end, 'test_logit_norm is not a number'},
    {function() ex.reliability(run_a, {epoch = 9}) end, 'has no epoch 9 (it holds epochs 1 to 3)'},
    {function() ex.reliability(run_a, {epoch = 'first'}) end, "epoch must be a number, 'last' or 'best'"},
    {function() ex.reliability({}) end, 'expects a run folder or a list of run folders'},
    {function() ex.reliability({run_a, 3}) end, 'a run folder is a path (a string), got number'},
    {function() ex.reliability(run_a, {labels = {'x', 'y'}}) end, 'labels must be a list of 1 names'},
    {function() ex.reliability(run_a, {bins = 10}) end, "unknown option 'bins'"},
    {function() ex.logitNorm(run_a, {epoch = 1}) end, "unknown option 'epoch'"},
  }
  for _, c in ipairs(cases_err) do t.errors(c[1], c[2], 'refused: ' .. c[2]) end
end

---------------------------------------------------------------------------
-- plots (gnuplot-nox)

if plot.available() then
  local function png(path)
    local f = io.open(path, 'rb')
    if not f then return false end
    local head = f:read(8)
    f:close()
    return head == '\137PNG\r\n\26\n'
  end
  local made = {
    {'curve.png', function(f) ex.curve{losses = {'ce', 'crl', 'nllr'}, what = 'weight', file = f, quiet = true} end},
    {'sweep.png', function(f) ex.sweep{loss = 'crl', param = 'alpha', values = {1, 2}, file = f, quiet = true} end},
    {'rel.png', function(f) ex.reliability({run_a, run_b}, {file = f, quiet = true}) end},
    {'conf.png', function(f) ex.confidence({run_a, run_b}, {file = f, quiet = true}) end},
    {'norm.png', function(f) ex.logitNorm({run_a, run_b}, {file = f, logy = true, quiet = true}) end},
  }
  for _, m in ipairs(made) do
    local f = tmp .. '/' .. m[1]
    m[2](f)
    t.ok(png(f), 'plot: ' .. m[1] .. ' is a PNG')
    t.ok(io.open(f .. '.tmp') == nil, 'plot: no temporary file is left beside ' .. m[1])
  end
  local _, out = capture(function()
    return ex.curve{losses = {'ce', 'crl'}, what = 'weight', terminal = true, quiet = true}
  end)
  t.ok(out:find('crl{alpha=1.5,beta=1}', 1, true) ~= nil and out:find('p_y', 1, true) ~= nil,
       'plot: a text plot in the terminal')
  _, out = capture(function() return ex.logitNorm({run_a, run_b}, {terminal = true, quiet = true}) end)
  t.ok(out:find('Mean L2 norm', 1, true) ~= nil, 'plot: the logit norm in the terminal')
  t.errors(function() ex.curve{file = tmp .. '/no/such/dir/x.png', quiet = true} end, 'gnuplot failed writing',
           'plot: an unwritable file is an error')
  t.ok(io.open(tmp .. '/no/such/dir/x.png.tmp') == nil, 'plot: and leaves nothing')
  -- make demo's first part (no training): every PNG it names is written
  local root = os.getenv('CRLAB_HOME') or '.'
  local p = io.popen("'" .. root .. "/scripts/crlab' '" .. root .. "/scripts/demo.lua' --no-train --out '" .. tmp ..
                     "/demo' 2>&1")
  local dout = p:read('*a')
  local closed_ok = p:close()
  local pngs = 0
  for f in dout:match('wrote (.*)$') and dout:match('wrote (.*)$'):gmatch('%S+%.png') or function() end do
    pngs = pngs + (png(f) and 1 or 0)
  end
  t.ok((closed_ok == true or closed_ok == 0) and pngs == 8, 'scripts/demo.lua --no-train writes its 8 PNGs (' ..
       pngs .. ')')
  if pngs ~= 8 then t.diag(dout) end
  -- its command line: a bad value or a missing one is refused naming the option, with status 2, before any work
  for _, c in ipairs({{'--epochs 0', "train: option --epochs must be an integer >= 1, got '0'"},
                      {'--lr x', '--lr takes a number, got x'}, {'--out', '--out needs a value'},
                      {'--epochs', '--epochs needs a value'}, {'--frob 1', "unknown argument '--frob'"}}) do
    local ph = io.popen("cd '" .. tmp .. "' && '" .. root .. "/scripts/crlab' '" .. root .. "/scripts/demo.lua' " ..
                        c[1] .. ' 2>&1; echo "rc=$?"')
    local said = ph:read('*a')
    ph:close()
    t.ok(said:find('demo: ' .. c[2], 1, true) and said:find('rc=2', 1, true) and
         io.open(tmp .. '/runs/demo') == nil, 'scripts/demo.lua ' .. c[1] .. ': refused, nothing made: ' ..
         said:match('[^\n]*'))
  end
else
  t.skip('gnuplot not installed: plots not tested')
end

---------------------------------------------------------------------------
-- a tiny real run of the trainer (a few seconds): the run views read what it wrote

do
  local train = require 'crlab.train'
  local o = train.parse({'--dataset', 'fashion-mnist', '--loss', 'crl', '--train-limit', '256', '--test-limit', '200',
                         '--epochs', '2', '--batch', '64', '--out', tmp .. '/real', '--quiet', '--workers', '1'})
  -- only missing data skips this part: a trainer that fails, or records no test_bins, is a failure
  local have, why = pcall(require('crlab.data').load, 'fashion-mnist')
  local ok, r
  if have then ok, r = pcall(train.run, o) end
  if not have then
    t.skip('no real run: Fashion-MNIST is not installed (' .. tostring(why):match('[^\n]*') .. ')')
  elseif not ok or r.history[1].test_bins == nil then
    t.ok(false, 'real run: trains and records test_bins: ' .. (ok and 'no test_bins in its record' or tostring(r)))
  else
    local rel = ex.reliability(tmp .. '/real', {quiet = true})
    t.eq(rel.runs[1].label, 'crl{alpha=1.5,beta=1}', 'real run: labelled by the loss in its checkpoint')
    local n, ece = 0, 0
    for _, b in ipairs(rel.runs[1].bins) do n = n + b.count end
    t.eq(n, 200, 'real run: the bins hold every test example')
    for _, b in ipairs(rel.runs[1].bins) do
      if b.count > 0 then ece = ece + b.count / n * math.abs(b.accuracy - b.confidence) end
    end
    t.close(ece, rel.runs[1].ece, 1e-6, 'real run: the bins give the ECE the trainer recorded', 1e-7)
    local norm = ex.logitNorm(tmp .. '/real', {quiet = true})
    t.eq(#norm.runs[1].norm, 2, 'real run: a logit norm per epoch')
    t.ok(norm.runs[1].norm[1] > 0, 'real run: the logit norm is positive')
  end
end

os.execute("rm -rf '" .. tmp .. "'")
t.done()
