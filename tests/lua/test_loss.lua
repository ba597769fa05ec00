-- The loss criteria from Lua: values and gradients against the definitions
-- written out here in plain Lua doubles, against the numpy reference file,
-- the reductions, and the errors for bad labels, shapes and options.
local t = require 'tap'
local crlab = require 'crlab'

local rows = {{2, 1, 0.1}, {0.5, 2.5, -1}}
local y = {0, 1}
local z = crlab.tensor(rows)

-- the definitions, straight from the paper, in double precision
local function softmax(r)
  local m, s, p = -math.huge, 0, {}
  for _, v in ipairs(r) do m = math.max(m, v) end
  for i, v in ipairs(r) do p[i] = math.exp(v - m); s = s + p[i] end
  for i = 1, #p do p[i] = p[i] / s end
  return p
end

local function crl_def(alpha, beta)
  local total, grads = 0, {}
  for i, r in ipairs(rows) do
    local p = softmax(r)
    local c = y[i] + 1
    local others = 0
    for j = 1, #p do if j ~= c then others = others + p[j] end end
    total = total - beta * math.log(p[c] / (alpha + others))
    local scale = beta * (alpha + 1) / (alpha + 1 - p[c]) / #rows
    grads[i] = {}
    for j = 1, #p do grads[i][j] = scale * (p[j] - (j == c and 1 or 0)) end
  end
  return total / #rows, grads
end

-- float32 logits: compare with the definition evaluated on the same floats
rows = z:totable()
for _, ab in ipairs({{1.5, 1}, {1, 0.5}, {3, 2}, {0, 1}}) do
  local alpha, beta = ab[1], ab[2]
  local crit = crlab.loss.crl{alpha = alpha, beta = beta}
  local want, wgrad = crl_def(alpha, beta)
  t.close(crit:forward(z, y), want, 1e-5,
          string.format('CRL(alpha=%g, beta=%g) forward matches the definition to 1e-5', alpha, beta))
  local g = crit:backward(z, y)
  local worst = 0
  for i = 1, 2 do
    for j = 1, 3 do
      worst = math.max(worst, math.abs(g[i][j] - wgrad[i][j]) / math.abs(wgrad[i][j]))
    end
  end
  t.ok(worst < 1e-5, string.format('CRL(alpha=%g, beta=%g) backward matches the definition ' ..
                                   '(worst relative error %.1e)', alpha, beta, worst))
end

local crl = crlab.loss.crl{alpha = 1.5, beta = 1}
local labels = crlab.tensor({0, 1}, 'int32')
t.eq(crl:forward(z, labels), crl:forward(z, y), 'labels as an int32 tensor or a Lua table agree')
t.eq(crl:backward(z, y), crl.gradInput, 'backward returns the criterion-owned gradInput buffer')
t.close(crlab.loss.nllr():forward(z, y), crlab.loss.crl{alpha = 0, beta = 1}:forward(z, y), 1e-12,
        'NLLR is CRL(alpha = 0, beta = 1)')
local ce = crlab.loss.ce():forward(z, y)
local ls = z:log_softmax(2)
t.close(ce, -(ls[1][1] + ls[2][2]) / 2, 1e-6, 'CE is the mean of -log_softmax at the label')
t.close(crlab.loss.focal{gamma = 0}:forward(z, y), ce, 1e-12, 'focal with gamma 0 is CE')
t.ok(crlab.loss.ce{smoothing = 0.1}:forward(z, y) > ce, 'label smoothing raises the loss of confident rows')

-- reductions
local none = crlab.loss.crl{reduction = 'none'}
local per = none:forward(z, y)
t.eq(per:type(), 'crlab.FloatTensor', "reduction 'none' returns a tensor")
t.eq(per:size(1), 2, '... of one loss per example')
t.close(per:sum(), crlab.loss.crl{reduction = 'sum'}:forward(z, y), 1e-6, "'sum' is the sum of 'none'")
t.close(per:mean(), crl:forward(z, y), 1e-6, "'mean' is the mean of 'none'")
local g_none = none:backward(z, y, crlab.tensor{1, 1}):clone()
local g_sum = crlab.loss.crl{reduction = 'sum'}:backward(z, y)
t.close((g_none - g_sum):abs():max(), 0, 0, "'none' with unit grad_output equals 'sum'", 1e-7)
local g2 = crlab.loss.crl{reduction = 'sum'}:backward(z, y, 2)
t.close((g2 - g_sum * 2):abs():max(), 0, 0, 'a number grad_output scales the gradient', 1e-7)

-- the numpy reference file, through the binding
local f = assert(io.open((os.getenv('CRLAB_HOME') or '.') .. '/tests/ref/loss_ref.txt'))
local cases, bad = 0, 0
local function nums(line, tag)
  local out = {}
  for v in line:sub(#tag + 2):gmatch('%S+') do out[#out + 1] = tonumber(v) end
  return out
end
while true do
  local head = f:read('*l')
  if head == nil then break end
  if head:sub(1, 5) == 'case ' then
    local kind, red, alpha, beta, gamma, smoothing, n, k =
      head:match('^case (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%d+) (%d+)')
    n, k = tonumber(n), tonumber(k)
    local logits, lab = nums(f:read('*l'), 'logits'), nums(f:read('*l'), 'labels')
    local value = nums(f:read('*l'), 'value')[1]
    f:read('*l') f:read('*l') -- per, grad: checked by the C test
    local nested = {}
    for i = 1, n do
      nested[i] = {}
      for j = 1, k do nested[i][j] = logits[(i - 1) * k + j] end
    end
    local opts = {reduction = red ~= 'none' and red or 'sum'}
    if kind == 'crl' then opts.alpha, opts.beta = tonumber(alpha), tonumber(beta) end
    if kind == 'focal' then opts.gamma = tonumber(gamma) end
    if kind == 'ce' then opts.smoothing = tonumber(smoothing) end
    local got = crlab.loss.byName(kind, opts):forward(crlab.tensor(nested), lab)
    if math.abs(got - value) > 1e-7 * math.abs(value) + 1e-9 then
      bad = bad + 1
      t.diag(head .. ': got ' .. got .. ', want ' .. value)
    end
    cases = cases + 1
  end
end
f:close()
t.ok(cases >= 90 and bad == 0, cases .. ' numpy reference values reproduced through the Lua API (' ..
     bad .. ' mismatches)')

-- errors
t.errors(function() return crl:forward(z, {0, 3}) end, 'label 3 of example 1 (0-based) is outside [0, 3)',
         'a label of 3 with K = 3')
t.errors(function() return crl:forward(z, {0, 1, 2}) end,
         'logits (2, 3) hold 2 examples but labels (3) hold 3', 'logits (2,3) with 3 labels')
t.errors(function() return crl:backward(z, {0, -1}) end, 'label -1', 'a negative label in backward')
t.errors(function() return crl:forward(z, {0, 1.5}) end, 'must be an integer class index', 'a fractional label')
t.errors(function() return crl:forward(z, crlab.tensor{0, 1}) end, 'int32', 'float labels')
t.errors(function() return crl:forward(crlab.zeros(3), {0, 1, 2}) end, '(N, K)', '1-d logits')
t.errors(function() return crl:forward({1, 2}, {0}) end, 'logits must be a tensor', 'a table as logits')
t.errors(function() return crlab.loss.crl{alpha = -1} end, 'alpha = -1 must be finite and >= 0', 'alpha < 0')
t.errors(function() return crlab.loss.crl{beta = 0} end, 'beta', 'beta = 0')
t.errors(function() return crlab.loss.crl{alhpa = 2} end, "unknown option 'alhpa'", 'a misspelt option')
t.errors(function() return crlab.loss.focal{gamma = 'two'} end, 'gamma must be a number', 'a string gamma')
t.errors(function() return crlab.loss.ce{reduction = 'avg'} end, "reduction must be 'mean', 'sum' or 'none'",
         'an unknown reduction')
t.errors(function() return crlab.loss.byName('hinge') end, "unknown loss 'hinge'", 'an unknown loss name')
t.errors(function() return none:backward(z, y, crlab.tensor{1, 1, 1}) end, 'grad_output',
         'a grad_output of the wrong length')
t.eq(tostring(crl), "crlab.loss.crl{alpha=1.5, beta=1, reduction='mean'}", 'a criterion prints its options')

-- forwardTensor: the value stays in a one-element tensor, per-example losses beside it
do
  local zz = crlab.randn(5, 4)
  local yy = crlab.tensor({0, 3, 1, 2, 2}, 'int32')
  for _, red in ipairs({'mean', 'sum', 'none'}) do
    local c = crlab.loss.crl{reduction = red}
    local v, per = c:forwardTensor(zz, yy)
    local want = crlab.loss.crl{reduction = red == 'none' and 'sum' or red}:forward(zz, yy)
    t.ok(v:numel() == 1 and v[1] == tonumber(require('ffi').cast('float', want)) and per:numel() == 5,
         red .. ': forwardTensor leaves forward\'s value (as a float32) in a (1) tensor')
  end
  t.errors(function() crl:forwardTensor(zz, {0, 1, 2, 3, 4}) end, 'label 4 of example 4', 'forwardTensor checks labels')
end

-- -inf logits: IEEE values wherever the math is defined (a -inf logit has p = 0)
do
  local inf = math.huge
  local function row(v) return crlab.tensor({v}) end
  local function isnan(x) return x ~= x end
  local ce, focal = crlab.loss.ce(), crlab.loss.focal{gamma = 2}
  t.close(ce:forward(row{0, -inf, 0}, {0}), math.log(2), 1e-7, 'CE of {0, -inf, 0} at label 0 is log 2')
  t.eq(ce:forward(row{-inf, 0, 0}, {0}), inf, 'CE of {-inf, 0, 0} at label 0 is inf')
  t.eq(crlab.loss.ce{smoothing = 0.1}:forward(row{0, -inf, 0}, {0}), inf, 'smoothed CE with a -inf logit is inf')
  t.close(ce:forward(row{-inf, -inf, 0}, {2}), 0, 0, 'CE of {-inf, -inf, 0} at label 2 is 0', 1e-12)
  t.close(crlab.loss.crl():forward(row{-inf, -inf, 0}, {2}), math.log(1.5), 1e-7,
          'CRL of {-inf, -inf, 0} at label 2 is log(alpha)')
  t.eq(crlab.loss.nllr():forward(row{-inf, -inf, 0}, {2}), -inf, 'NLLR of {-inf, -inf, 0} at label 2 is -inf')
  -- (NLLR's gradient on {-inf, -inf, 0} at label 2 is 0/0: the softmax of the other, all -inf, logits)
  for _, c in ipairs({ce, focal, crlab.loss.crl(), crlab.loss.nllr()}) do
    for _, case in ipairs({{{0, -inf, 0}, 0}, {{-inf, 0, 0}, 0}, c.name ~= 'nllr' and {{-inf, -inf, 0}, 2} or nil}) do
      local g = c:backward(row(case[1]), {case[2]}):totable()[1]
      t.ok(not isnan(g[1]) and not isnan(g[2]) and not isnan(g[3]),
           string.format('%s backward of {%s} at label %d has no NaN (%s)', tostring(c),
                         table.concat(case[1], ', '), case[2], table.concat(g, ' ')))
    end
  end
  local g = focal:backward(row{-inf, 0, 0}, {0}):totable()[1]
  t.ok(g[1] == -1 and g[2] == 0.5 and g[3] == 0.5, 'focal backward of {-inf, 0, 0} at label 0 is p - onehot')
  t.ok(isnan(ce:forward(row{-inf, -inf, -inf}, {0})), 'CE of an all -inf row stays NaN (undefined)')
end

-- huge equal logits: the shift by the maximum is exact, so the values are those of {0, 0, 0}
do
  for _, s in ipairs({1e15, 1e16, 1e20, 3e38, -1e20}) do
    local z = crlab.tensor({{s, s, s}})
    t.close(crlab.loss.ce():forward(z, {0}), math.log(3), 1e-7, string.format('CE of three logits %g is log 3', s))
    t.close(crlab.loss.ce{smoothing = 0.1}:forward(z, {0}), math.log(3), 1e-7,
            string.format('smoothed CE of three logits %g is log 3', s))
    t.close(crlab.loss.crl():forward(z, {0}), math.log(6.5), 1e-7,
            string.format('CRL of three logits %g is log((1.5 + 2/3) / (1/3))', s))
    t.close(crlab.loss.focal():forward(z, {0}), 4 / 9 * math.log(3), 1e-6,
            string.format('focal of three logits %g is (2/3)^2 log 3', s))
    local g = crlab.loss.ce():backward(z, {0}):totable()[1]
    t.ok(math.abs(g[1] + 2 / 3) < 1e-6 and math.abs(g[2] - 1 / 3) < 1e-6,
         string.format('CE backward of three logits %g is p - onehot (%s)', s, table.concat(g, ' ')))
    t.close(z:softmax(2):sum(), 1, 1e-6, string.format('softmax of three logits %g sums to 1', s))
    t.close(z:log_softmax(2)[1][2], -math.log(3), 1e-6, string.format('log_softmax of three logits %g is -log 3', s))
  end
end
t.done()
