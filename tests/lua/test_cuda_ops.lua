-- The CUDA backend's tensor operations against the CPU's: elementwise,
-- reductions, softmax, GEMM, the linear layer, and the messages of bad
-- arguments. See devcheck.lua for the harness. Sizes are odd on purpose
-- (37x65, batch 3), so no kernel meets only whole warps or blocks.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local nn = require 'crlab.nn'
local D = require 'devcheck'
local C = crlab.C

crlab.manualSeed(11)

-- GEMMs compare in plain float32; one case below turns TF32 on.
local tf32_was
if not D.stand_in and D.available() then
  tf32_was = crlab.cuda.allowTF32()
  crlab.cuda.allowTF32(false)
end

local function flat(x)
  local h = D.host(x):contiguous()
  return h:view(h:numel()):totable()
end

-- Like D.close, but NaN must sit where the CPU has NaN and infinities
-- must match exactly.
local function close_nan(got, want, name, rtol)
  rtol = rtol or 1e-4
  local g, w = flat(got), flat(want:contiguous())
  if #g ~= #w then return t.ok(false, name .. ': ' .. #g .. ' elements on the device, ' .. #w .. ' on the CPU') end
  local scale = 0
  for _, v in ipairs(w) do if v == v and math.abs(v) ~= math.huge then scale = math.max(scale, math.abs(v)) end end
  for i = 1, #w do
    local a, b = g[i], w[i]
    local good
    if b ~= b then good = a ~= a
    elseif math.abs(b) == math.huge then good = a == b
    else good = math.abs(a - b) <= rtol * (1 + scale) end
    if not good then
      t.ok(false, name)
      return t.diag(('element %d: %s on the device, %s on the CPU'):format(i, tostring(a), tostring(b)))
    end
  end
  return t.ok(true, name)
end

-- Exactly equal (indices, comparisons).
local function same(got, want, name)
  local g, w = flat(got), flat(want:contiguous())
  local bad = #g ~= #w
  for i = 1, math.min(#g, #w) do if g[i] ~= w[i] then bad = true end end
  return t.ok(not bad, name)
end

-- Both calls fail, with one message (the position in this file aside).
local function same_error(cpu_fn, dev_fn, name)
  local ok1, e1 = pcall(cpu_fn)
  local ok2, e2 = pcall(dev_fn)
  e1 = tostring(e1):gsub('^[^:]*:%d+: ', '')
  e2 = tostring(e2):gsub('^[^:]*:%d+: ', '')
  local good = not ok1 and not ok2 and e1 == e2
  if not t.ok(good, name) then t.diag('CPU: ' .. (ok1 and '(no error)' or e1) .. '\ndevice: ' .. (ok2 and '(no error)' or e2)) end
  return good
end

local binary_names = {'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'}
local unary_names = {'neg', 'abs', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'square', 'floor', 'ceil', 'sign'}

-- Values with many ties (comparisons, arg-extremes) and positive ones (pow, log, sqrt).
local function ties(...) return (crlab.randn(...) * 3):floor() end
local function positive(...) return crlab.rand(...) + 0.1 end

D.run(t, {
  ---------------------------------------------------------------------------
  -- elementwise
  {'binary add, contiguous', function()
    local a, b = crlab.randn(37, 65), crlab.randn(37, 65)
    D.close(t, D.to(a) + D.to(b), a + b, 'a + b')
  end},
  {'every binary op, float32', function()
    local a, b = ties(37, 65), ties(37, 65)
    a:narrow(1, 1, 5):copy(b:narrow(1, 1, 5)) -- some equal pairs
    for _, op in ipairs(binary_names) do
      local x, y = a, b
      if op == 'pow' then x, y = positive(37, 65), crlab.randn(37, 65) end
      if op == 'div' then y = positive(37, 65) * crlab.randn(37, 65):sign() end
      D.close(t, D.to(x)[op](D.to(x), D.to(y)), x[op](x, y), op .. ' (37x65)')
    end
  end},
  {'operators and NaN in maximum / minimum', function()
    local a, b = crlab.randn(3, 37), positive(3, 37)
    local ga, gb = D.to(a), D.to(b)
    D.close(t, ga - gb * 2, a - b * 2, 'a - b * 2')
    D.close(t, ga / gb, a / b, 'a / b')
    D.close(t, gb ^ ga, b ^ a, 'b ^ a')
    D.close(t, -ga, -a, '-a')
    local x, y = crlab.tensor({1, 0 / 0, 3, 0 / 0}), crlab.tensor({2, 2, 0 / 0, 0 / 0})
    close_nan(D.to(x):maximum(D.to(y)), x:maximum(y), 'maximum lets NaN through')
    close_nan(D.to(x):minimum(D.to(y)), x:minimum(y), 'minimum lets NaN through')
    same(D.to(x):eq(D.to(y)), x:eq(y), 'NaN compares unequal')
  end},
  {'broadcasting', function()
    local a, b = crlab.randn(37, 1, 5), crlab.randn(4, 5)
    D.close(t, D.to(a) + D.to(b), a + b, '(37, 1, 5) + (4, 5)')
    local c, d = crlab.randn(3, 1), crlab.randn(1, 65)
    D.close(t, D.to(c) * D.to(d), c * d, '(3, 1) * (1, 65)')
    local e, s = crlab.randn(37, 65), crlab.tensor({1.5})
    D.close(t, D.to(e) - D.to(s), e - s, '(37, 65) - (1)')
    D.close(t, D.to(s) / D.to(e), s / e, '(1) / (37, 65)')
    local f, g = ties(5, 1, 7), ties(3, 1)
    same(D.to(f):le(D.to(g)), f:le(g), '(5, 1, 7) <= (3, 1)')
  end},
  {'copy between overlapping views of one tensor; fill with -0.0', function()
    local a = crlab.randn(3, 100)
    local g = D.to(a)
    a:narrow(2, 2, 90):copy(a:narrow(2, 1, 90))
    g:narrow(2, 2, 90):copy(g:narrow(2, 1, 90))
    same(g, a, 'shifted copy within one storage (memmove semantics)')
    local z, gz = crlab.zeros(3, 5):fill(-0.0), D.to(crlab.zeros(3, 5)):fill(-0.0)
    local hz, hcpu = flat(gz), flat(z)
    t.ok(1 / hz[1] == -math.huge and 1 / hcpu[1] == -math.huge, 'fill(-0.0) keeps the sign bit')
  end},
  {'non-contiguous operands', function()
    local a, b = crlab.randn(65, 37), crlab.randn(37, 65)
    D.close(t, D.to(a):t() + D.to(b), a:t() + b, 'transposed + contiguous')
    D.close(t, D.to(b):narrow(2, 3, 20) * D.to(a):t():narrow(2, 10, 20), b:narrow(2, 3, 20) * a:t():narrow(2, 10, 20),
            'narrowed * narrowed transposed')
    local r = crlab.randn(65)
    D.close(t, D.to(a):t() - D.to(r), a:t() - r, 'transposed - broadcast row')
    local c = crlab.randn(37, 2, 65)
    D.close(t, D.to(c):select(2, 2):maximum(D.to(b)), c:select(2, 2):maximum(b), 'selected (strided rows)')
  end},
  {'comparisons of int32 and uint8', function()
    local a, b = ties(37, 65):int(), ties(37, 65):int()
    local ga, gb = D.to(a), D.to(b)
    for _, op in ipairs({'eq', 'ne', 'lt', 'le', 'gt', 'ge'}) do same(ga[op](ga, gb), a[op](a, b), op .. ' on int32') end
    local u, v = (crlab.rand(3, 65) * 4):floor():byte(), (crlab.rand(1, 65) * 4):floor():byte()
    for _, op in ipairs({'eq', 'lt', 'ge'}) do
      same(D.to(u)[op](D.to(u), D.to(v)), u[op](u, v), op .. ' on uint8, broadcast')
    end
    same(D.to(a):t():gt(D.to(b):t()), a:t():gt(b:t()), 'int32 transposed')
  end},
  {'in place, on views', function()
    local base, b = crlab.randn(37, 65), crlab.randn(37, 30)
    local gbase = D.to(base)
    gbase:narrow(2, 5, 30):add_(D.to(b))
    base:narrow(2, 5, 30):add_(b)
    D.close(t, gbase, base, 'narrowed view += b (the rest untouched)')
    local row = crlab.randn(65)
    gbase:mul_(D.to(row))
    base:mul_(row)
    D.close(t, gbase, base, 'a *= broadcast row')
    gbase:t():narrow(1, 2, 7):sub_(0.25)
    base:t():narrow(1, 2, 7):sub_(0.25)
    D.close(t, gbase, base, 'transposed narrowed view -= scalar')
    gbase:narrow(1, 3, 4):exp_()
    base:narrow(1, 3, 4):exp_()
    D.close(t, gbase, base, 'exp_ on a narrowed view')
  end},
  {'with a scalar', function()
    local a = crlab.randn(37, 65)
    local ga = D.to(a)
    D.close(t, ga + 2, a + 2, 'a + 2')
    D.close(t, 2 - ga, 2 - a, '2 - a (reversed)')
    D.close(t, ga * -1.5, a * -1.5, 'a * -1.5')
    D.close(t, ga / 3, a / 3, 'a / 3')
    D.close(t, 3 / ga, 3 / a, '3 / a (reversed)')
    D.close(t, ga ^ 2, a ^ 2, 'a ^ 2')
    D.close(t, 2 ^ ga, 2 ^ a, '2 ^ a (reversed)')
    D.close(t, ga:maximum(0.3), a:maximum(0.3), 'maximum(a, 0.3)')
    D.close(t, ga:t():gt(0), a:t():gt(0), 'transposed a > 0')
    D.close(t, ga:narrow(2, 2, 9):le(0.1), a:narrow(2, 2, 9):le(0.1), 'narrowed a <= 0.1')
  end},
  {'every unary op', function()
    local a, p = crlab.randn(37, 65) * 3, positive(37, 65)
    for _, op in ipairs(unary_names) do
      local x = (op == 'log' or op == 'sqrt') and p or a
      D.close(t, D.to(x)[op](D.to(x)), x[op](x), op)
      D.close(t, D.to(x):t()[op](D.to(x):t()), x:t()[op](x:t()), op .. ' (transposed)')
    end
    local big = crlab.tensor({-100, -20, 0, 20, 100})
    D.close(t, D.to(big):sigmoid(), big:sigmoid(), 'sigmoid far from 0')
  end},
  {'clamp', function()
    local a = crlab.randn(37, 65)
    D.close(t, D.to(a):clamp(-0.5, 0.7), a:clamp(-0.5, 0.7), 'clamp(-0.5, 0.7)')
    D.close(t, D.to(a):narrow(1, 2, 9):clamp(0), a:narrow(1, 2, 9):clamp(0), 'clamp(0) of a narrowed view')
    D.close(t, D.to(a):t():clamp(nil, 0.1), a:t():clamp(nil, 0.1), 'clamp(nil, 0.1) of a transposed view')
  end},

  ---------------------------------------------------------------------------
  -- reductions
  {'sum and mean along a dimension', function()
    local a = crlab.randn(3, 37, 5)
    for _, d in ipairs({1, 2, 3, -1}) do
      for _, keep in ipairs({false, true}) do
        local tag = ' dim ' .. d .. (keep and ', keepdim' or '')
        D.close(t, D.to(a):sum(d, keep), a:sum(d, keep), 'sum' .. tag)
        D.close(t, D.to(a):mean(d, keep), a:mean(d, keep), 'mean' .. tag)
      end
    end
    local b = crlab.randn(65, 37)
    D.close(t, D.to(b):t():sum(1), b:t():sum(1), 'sum of a transposed view, dim 1')
    D.close(t, D.to(b):narrow(2, 4, 20):mean(2, true), b:narrow(2, 4, 20):mean(2, true), 'mean of a narrowed view')
    local long = crlab.randn(3, 5000)
    D.close(t, D.to(long):sum(2), long:sum(2), 'sum of rows longer than a warp')
    local e = crlab.zeros(3, 0)
    D.close(t, D.to(e):sum(2), e:sum(2), 'sum over an empty dimension is 0')
    close_nan(D.to(e):mean(2), e:mean(2), 'mean over an empty dimension is NaN')
  end},
  {'max and min along a dimension, with indices', function()
    local a = ties(3, 37, 65)
    for _, d in ipairs({1, 2, 3, -1}) do
      for _, keep in ipairs({false, true}) do
        local tag = ' dim ' .. d .. (keep and ', keepdim' or '')
        local gv, gi = D.to(a):max(d, keep)
        local v, i = a:max(d, keep)
        D.close(t, gv, v, 'max values' .. tag)
        same(gi, i, 'max indices (ties: the first)' .. tag)
        gv, gi = D.to(a):min(d, keep)
        v, i = a:min(d, keep)
        D.close(t, gv, v, 'min values' .. tag)
        same(gi, i, 'min indices' .. tag)
      end
    end
    local b = ties(65, 37)
    same(D.to(b):t():argmax(2), b:t():argmax(2), 'argmax of a transposed view')
    same(D.to(b):narrow(1, 3, 40):argmin(1), b:narrow(1, 3, 40):argmin(1), 'argmin of a narrowed view')
    local long = ties(2, 3000)
    same(D.to(long):argmax(2), long:argmax(2), 'argmax of rows longer than a warp')
    local n = crlab.randn(4, 40)
    n[2][7], n[2][30], n[4][1] = 0 / 0, 0 / 0, 0 / 0
    local gv, gi = D.to(n):max(2)
    local v, i = n:max(2)
    close_nan(gv, v, 'max: NaN wins')
    same(gi, i, 'max: the index of the first NaN')
    gv, gi = D.to(n):min(2)
    v, i = n:min(2)
    close_nan(gv, v, 'min: NaN wins')
    same(gi, i, 'min: the index of the first NaN')
  end},
  {'softmax and log_softmax', function()
    local a = crlab.randn(37, 65) * 4
    for _, d in ipairs({1, 2, -1}) do
      D.close(t, D.to(a):softmax(d), a:softmax(d), 'softmax dim ' .. d)
      D.close(t, D.to(a):log_softmax(d), a:log_softmax(d), 'log_softmax dim ' .. d)
    end
    local b = crlab.randn(3, 10, 7)
    D.close(t, D.to(b):softmax(2), b:softmax(2), 'softmax over the middle dimension')
    D.close(t, D.to(b):log_softmax(1), b:log_softmax(1), 'log_softmax over the first dimension')
    local big = crlab.randn(3, 65) * 1000
    D.close(t, D.to(big):log_softmax(), big:log_softmax(), 'log_softmax of large logits (max subtracted)')
    D.close(t, D.to(big):softmax(), big:softmax(), 'softmax of large logits')
    local c = crlab.randn(65, 37)
    D.close(t, D.to(c):t():log_softmax(2), c:t():log_softmax(2), 'log_softmax of a transposed view')
    local inf = crlab.randn(3, 5)
    inf[1][2], inf[2][1], inf[2][5] = -math.huge, -math.huge, -math.huge
    for k = 1, 5 do inf[3][k] = -math.huge end
    close_nan(D.to(inf):softmax(), inf:softmax(), 'softmax with -inf entries (a row of all -inf is NaN)')
    close_nan(D.to(inf):log_softmax(), inf:log_softmax(), 'log_softmax with -inf entries')
    local long = crlab.randn(2, 3000)
    D.close(t, D.to(long):log_softmax(), long:log_softmax(), 'log_softmax of rows longer than a warp')
  end},
  {'reductions over all elements', function()
    local a = crlab.randn(37, 65)
    t.close(D.to(a):sum(), a:sum(), 1e-9, 'sum()', 1e-9)
    t.close(D.to(a):mean(), a:mean(), 1e-9, 'mean()', 1e-9)
    t.eq(D.to(a):max(), a:max(), 'max()')
    t.eq(D.to(a):min(), a:min(), 'min()')
    t.close(D.to(a):t():sum(), a:t():sum(), 1e-9, 'sum() of a transposed view', 1e-9)
    t.eq(D.to(a):narrow(2, 3, 7):max(), a:narrow(2, 3, 7):max(), 'max() of a narrowed view')
    local big = crlab.randn(301, 1001) -- more elements than one launch's threads
    t.close(D.to(big):sum(), big:sum(), 1e-9, 'sum() of 301x1001', 1e-9)
    t.eq(D.to(big):max(), big:max(), 'max() of 301x1001')
    t.eq(D.to(big):min(), big:min(), 'min() of 301x1001')
    local i = (crlab.randn(37, 65) * 1000):floor():int()
    t.eq(D.to(i):sum(), i:sum(), 'sum() of int32 (exact)')
    t.eq(D.to(i):max(), i:max(), 'max() of int32')
    t.eq(D.to(i):t():min(), i:t():min(), 'min() of transposed int32')
    local u = (crlab.rand(37, 65) * 255):floor():byte()
    t.eq(D.to(u):sum(), u:sum(), 'sum() of uint8')
    t.eq(D.to(u):max(), u:max(), 'max() of uint8')
    t.eq(D.to(u):min(), u:min(), 'min() of uint8')
    local n = crlab.randn(5, 7)
    n[3][4] = 0 / 0
    local gmax = D.to(n):max()
    t.ok(gmax ~= gmax and D.to(n):min() ~= D.to(n):min(), 'max() and min() with a NaN are NaN')
    t.eq(D.to(crlab.zeros(3, 0)):sum(), 0, 'sum() of an empty tensor is 0')
  end},
  {'sumsq (gradient clipping)', function()
    local g = crlab.randn(1001)
    local gg = D.to(g)
    local norm_cpu = crlab.optim.clipGradNorm(g, 5)
    local norm_dev = crlab.optim.clipGradNorm(gg, 5)
    t.close(norm_dev, norm_cpu, 1e-9, 'the norm', 1e-9)
    D.close(t, gg, g, 'the clipped gradients')
    t.eq(crlab.optim.clipGradNorm(D.to(crlab.zeros(0)), 1), 0, 'the norm of nothing is 0')
  end},

  ---------------------------------------------------------------------------
  -- GEMM and the linear layer
  {'mm', function()
    local a, b = crlab.randn(37, 65), crlab.randn(65, 29)
    D.close(t, D.to(a):mm(D.to(b)), a:mm(b), '(37, 65) x (65, 29)')
    D.close(t, D.to(b):t():mm(D.to(a):t()), b:t():mm(a:t()), 'transposed views')
    D.close(t, D.to(a):narrow(2, 2, 30):mm(D.to(b):narrow(1, 5, 30)), a:narrow(2, 2, 30):mm(b:narrow(1, 5, 30)),
            'narrowed views (leading dimension > columns)')
    local v = crlab.randn(65, 1)
    D.close(t, D.to(a):mm(D.to(v)), a:mm(v), 'matrix x column')
    local e = crlab.randn(37, 1)
    D.close(t, D.to(e):expand(37, 65):mm(D.to(b)), e:expand(37, 65):mm(b), 'expanded operand (copied first)')
    local s = crlab.randn(37, 65, 2)
    D.close(t, D.to(s):select(3, 2):mm(D.to(b)), s:select(3, 2):mm(b), 'strided operand (copied first)')
  end},
  {'gemm: transpose flags, alpha, beta', function()
    local m, k, n = 37, 65, 29
    for ta = 0, 1 do
      for tb = 0, 1 do
        local a = ta == 1 and crlab.randn(k, m) or crlab.randn(m, k)
        local b = tb == 1 and crlab.randn(n, k) or crlab.randn(k, n)
        local c = crlab.randn(m, n)
        local gc = D.to(c)
        assert(C.crl_tensor_gemm(c, a, b, ta, tb, 0.5, 0.75) == 0)
        assert(C.crl_tensor_gemm(gc, D.to(a), D.to(b), ta, tb, 0.5, 0.75) == 0)
        D.close(t, gc, c, ('transpose_a %d, transpose_b %d, alpha 0.5, beta 0.75'):format(ta, tb))
        -- the same product from transposed views, flags flipped
        local at, bt = a:t():contiguous(), b:t():contiguous()
        local c2 = crlab.randn(m, n)
        local gc2 = D.to(c2)
        assert(C.crl_tensor_gemm(c2, at:t(), bt:t(), ta, tb, -1, 1) == 0)
        assert(C.crl_tensor_gemm(gc2, D.to(at):t(), D.to(bt):t(), ta, tb, -1, 1) == 0)
        D.close(t, gc2, c2, ('transposed views, transpose_a %d, transpose_b %d, beta 1'):format(ta, tb))
      end
    end
    local a, b = crlab.randn(m, k), crlab.randn(k, n)
    -- out a transposed view (column-major) and a strided view, with beta != 0
    local base = crlab.randn(n, m)
    local gbase = D.to(base)
    assert(C.crl_tensor_gemm(base:t(), a, b, 0, 0, 1, 2) == 0)
    assert(C.crl_tensor_gemm(gbase:t(), D.to(a), D.to(b), 0, 0, 1, 2) == 0)
    D.close(t, gbase, base, 'out a transposed view, beta 2')
    local sbase = crlab.randn(m, n, 2)
    local gsbase = D.to(sbase)
    assert(C.crl_tensor_gemm(sbase:select(3, 1), a, b, 0, 0, 1, -1) == 0)
    assert(C.crl_tensor_gemm(gsbase:select(3, 1), D.to(a), D.to(b), 0, 0, 1, -1) == 0)
    D.close(t, gsbase, sbase, 'out a strided view, beta -1 (the other half untouched)')
    -- k = 0: out is beta * out
    local z1, z2 = crlab.zeros(m, 0), crlab.zeros(0, n)
    local c = crlab.randn(m, n)
    local gc = D.to(c)
    assert(C.crl_tensor_gemm(c, z1, z2, 0, 0, 1, 3) == 0)
    assert(C.crl_tensor_gemm(gc, D.to(z1), D.to(z2), 0, 0, 1, 3) == 0)
    D.close(t, gc, c, 'k = 0, beta 3')
    D.close(t, D.to(z1):mm(D.to(z2)), z1:mm(z2), 'k = 0, beta 0: zeros')
  end},
  {'mm with TF32', function()
    if D.stand_in then return t.skip('TF32 is a GPU switch') end
    crlab.cuda.allowTF32(true)
    local a, b = crlab.randn(37, 65), crlab.randn(65, 29)
    D.close(t, D.to(a):mm(D.to(b)), a:mm(b), '(37, 65) x (65, 29) in TF32', 1e-2)
    crlab.cuda.allowTF32(false)
  end},
  {'nn.Linear forward and backward', function()
    for _, bias in ipairs({true, false}) do
      local tag = bias and '' or ', without bias'
      local cpu, dev = D.pair(5, function() return nn.Linear(65, 29, {bias = bias}) end)
      local x, gy = crlab.randn(3, 65), crlab.randn(3, 29)
      local gx, ggy = D.to(x), D.to(gy)
      D.close(t, dev:forward(gx), cpu:forward(x), 'forward' .. tag)
      cpu:zeroGradParameters()
      dev:zeroGradParameters()
      for round = 1, 2 do -- the second round checks what accumulates
        D.close(t, dev:backward(gx, ggy), cpu:backward(x, gy), 'grad_in, round ' .. round .. tag)
        D.close(t, dev.gradWeight, cpu.gradWeight, 'grad_weight, round ' .. round .. tag)
        if bias then D.close(t, dev.gradBias, cpu.gradBias, 'grad_bias, round ' .. round .. tag) end
      end
    end
    local cpu, dev = D.pair(6, function() return nn.Linear(37, 1) end)
    local x = crlab.randn(130, 37)
    D.close(t, dev:forward(D.to(x)), cpu:forward(x), 'forward 130x37 -> 1')
    cpu:zeroGradParameters()
    dev:zeroGradParameters()
    local gy = crlab.randn(130, 1)
    D.close(t, dev:backward(D.to(x), D.to(gy)), cpu:backward(x, gy), 'grad_in 130x37 -> 1')
    D.close(t, dev.gradBias, cpu.gradBias, 'grad_bias summed over 130 rows')
  end},

  ---------------------------------------------------------------------------
  -- bad arguments: the device says what the CPU says
  {'bad arguments give the CPU messages', function()
    local a, b, i = crlab.randn(2, 3), crlab.randn(4, 3), ties(2, 3):int()
    same_error(function() return a + b end, function() return D.to(a) + D.to(b) end, 'shapes that do not broadcast')
    same_error(function() return i + i end, function() return D.to(i) + D.to(i) end, 'arithmetic on int32')
    same_error(function() return a:eq(i) end, function() return D.to(a):eq(D.to(i)) end, 'comparing two dtypes')
    same_error(function() return i:exp() end, function() return D.to(i):exp() end, 'unary maths on int32')
    same_error(function() return i * 2 end, function() return D.to(i) * 2 end, 'int32 times a scalar')
    same_error(function() return a:clamp(1, 0) end, function() return D.to(a):clamp(1, 0) end, 'clamp with lo > hi')
    same_error(function() return a:sum(3) end, function() return D.to(a):sum(3) end, 'sum over dim 3 of a matrix')
    same_error(function() return i:sum(1) end, function() return D.to(i):sum(1) end, 'sum(dim) of int32')
    same_error(function() return a:softmax(-3) end, function() return D.to(a):softmax(-3) end, 'softmax dim -3')
    local e = crlab.zeros(3, 0)
    same_error(function() return e:max(2) end, function() return D.to(e):max(2) end, 'max over an empty dimension')
    same_error(function() return e:min() end, function() return D.to(e):min() end, 'min() of an empty tensor')
    same_error(function() return a:mm(a) end, function() return D.to(a):mm(D.to(a)) end, 'mm with inner sizes that differ')
    same_error(function() return a:mm(crlab.randn(3)) end, function() return D.to(a):mm(D.to(crlab.randn(3))) end,
               'mm of a vector')
    local g = crlab.randn(4, 6)
    same_error(function() return crlab.optim.clipGradNorm(g:t(), 1) end,
               function() return crlab.optim.clipGradNorm(D.to(g):t(), 1) end, 'sumsq of a non-contiguous tensor')
    local cpu, dev = D.pair(7, function() return nn.Linear(5, 4) end)
    same_error(function() return cpu:forward(crlab.randn(3, 6)) end, function() return dev:forward(D.to(crlab.randn(3, 6))) end,
               'linear with the wrong input width')
    same_error(function() return cpu:forward(crlab.randn(5, 3):t()) end,
               function() return dev:forward(D.to(crlab.randn(5, 3)):t()) end, 'linear of a non-contiguous input')
  end},
  {'mixed devices are refused naming both', function()
    if D.stand_in then return t.skip('needs two devices') end
    local a, b = crlab.randn(37, 65), crlab.randn(37, 65)
    t.errors(function() return D.to(a) + b end, "'a' (37, 65) is on the CUDA and 'b' (37, 65) on the CPU", 'a + b')
    t.errors(function() return a:mm(D.to(b):t()) end, "'a' (37, 65) is on the CPU and 'b' (65, 37) on the CUDA", 'mm')
    local out = crlab.zeros(37, 37)
    t.ok(C.crl_tensor_gemm(out, D.to(a), D.to(b), 0, 1, 1, 0) == 0 and out.device == C.CRL_CUDA,
         'an output on the CPU is re-made on the device (outputs do not vote)')
    local cpu, dev = D.pair(8, function() return nn.Linear(65, 3) end)
    t.errors(function() return dev:forward(a) end, "'in' (37, 65) is on the CPU and 'weight' (3, 65) on the CUDA",
             'linear: a CPU input to a CUDA layer')
    local gx = D.to(a)
    dev:forward(gx)
    t.errors(function() return dev:backward(gx, crlab.randn(37, 3)) end, 'on the CPU', 'linear backward: a CPU gradOutput')
  end},
})

if tf32_was ~= nil then crlab.cuda.allowTF32(tf32_was) end
t.done()
