-- CUDA graphs (crlab.cuda.graph, the trainer's --cuda-graph): a captured
-- computation replayed equals the same run eagerly; what a capture must not
-- do (allocate past the cache, read back) fails with a message saying so
-- and leaves the stream usable; the trainer's step replayed from a graph
-- gives the losses of the eager step. See devcheck.lua for the harness:
-- with CRLAB_TEST_DEVICE=cpu the graph is its stand-in (replay calls the
-- function), which checks the Lua side and says nothing about CUDA.
--
-- TF32 is off and cuDNN deterministic: the graph and the eager run then do
-- the same fp32 work in the same order, hence the 1e-5 tolerances.
local t = require 'tap'
local crlab = require 'crlab'
local models = require 'crlab.models'
local optim = require 'crlab.optim'
local metrics = require 'crlab.metrics'
local train = require 'crlab.train'
local D = require 'devcheck'
local C = crlab.C

local dev = D.stand_in and 'cpu' or 'cuda'

-- the labels of n examples over K classes, from the seeded generator
local function labels(n, K)
  local y = crlab.randperm(n)
  for i = 1, n do y[i] = y[i] % K end
  return y
end

-- a model built from a seed, moved to the device, with its slabs
local function model_on_device(name, seed, opts)
  crlab.manualSeed(seed)
  local m = models.build(name, opts):skipInputGradient()
  if not D.stand_in then m:cuda() end
  local p, g, ranges = m:getParameters()
  return {model = m, params = p, grads = g, ranges = ranges, crit = crlab.loss.crl{alpha = 1.5, beta = 1},
          stats = metrics.new{bins = 15}}
end

local check = require('crlab.core').check

-- Outside D.run: needs no GPU.
t.errors(function() train.run(train.parse({'--cuda-graph', '--quiet'})) end,
         '--cuda-graph needs --device cuda', 'train.run with --cuda-graph and no --device cuda is refused at once')
t.errors(function() train.check_device({device = 'cpu', ['cuda-graph'] = true}) end,
         '--cuda-graph needs --device cuda', 'and so is the check of the options alone')
t.errors(function()
  train.check_graph(models.build('wrn-16-2', {channels = 3, classes = 10, size = 32, dropout = 0.3}), 'wrn-16-2')
end, 'has dropout (p = 0.3)', 'a model with dropout is refused for --cuda-graph')
t.ok(pcall(train.check_graph, models.build('resnet20', {channels = 3, classes = 10, size = 32}), 'resnet20'),
     'resnet20 has no dropout and may be captured')
t.errors(function() crlab.cuda.graph(42) end, 'expects a function, got number', 'crlab.cuda.graph wants a function')
t.errors(function() crlab.cuda.graph(function() end, 'tpu') end, "device 'cuda' or 'cpu'",
         'and a known device')

local tf32, determ
if not D.stand_in and D.available() then
  tf32, determ = crlab.cuda.allowTF32(), crlab.cuda.deterministic()
  crlab.cuda.allowTF32(false)
  crlab.cuda.deterministic(true) -- no atomics in cuDNN's backward: the eager and replayed sums in one order
end

D.run(t, {
  {'elementwise ops: a graph replayed 3 times equals the ops run eagerly', function()
    crlab.manualSeed(31)
    local a, b, acc = crlab.randn(37, 65), crlab.randn(37, 65), crlab.randn(37, 65)
    local ad, bd, accd = D.to(a), D.to(b), D.to(acc)
    local function ops(x, y, s, tmp, out)
      check(C.crl_tensor_binary(tmp, x, y, C.CRL_OP_MUL))
      check(C.crl_tensor_binary(s, s, tmp, C.CRL_OP_ADD)) -- in place: each run adds x * y once more
      check(C.crl_tensor_unary(out, s, C.CRL_UN_EXP))
    end
    local tmp, out = crlab.zeros(37, 65), crlab.zeros(37, 65)
    local tmpd, outd = D.to(tmp), D.to(out)
    ops(ad, bd, accd, tmpd, outd) -- one eager run first: the capture finds everything made
    local g = crlab.cuda.graph(function() ops(ad, bd, accd, tmpd, outd) end, dev)
    for _ = 1, 4 do ops(a, b, acc, tmp, out) end
    D.close(t, accd, acc - a:cmul(b) * 3, 'the capture itself ran nothing', 1e-5)
    for _ = 1, 3 do g:replay() end
    D.close(t, accd, acc, 'the accumulator after 1 eager run and 3 replays', 1e-5)
    D.close(t, outd, out, 'and the last op of the graph (exp)', 1e-5)
    g:free()
    t.errors(function() g:replay() end, 'replay of a freed graph', 'a freed graph is not replayed')
  end},

  {'resnet20: forward, loss, sums and backward replayed from a graph equal the eager step', function()
    local opts = {channels = 3, classes = 10, size = 32}
    local e, r = model_on_device('resnet20', 40, opts), model_on_device('resnet20', 40, opts)
    local se = train.stepper(e.model, e.crit, e.grads, e.stats, dev, false)
    local sr = train.stepper(r.model, r.crit, r.grads, r.stats, dev, true)
    crlab.manualSeed(41)
    local ok = true
    for i = 1, 5 do
      local x, y = crlab.randn(4, 3, 32, 32), labels(4, 10)
      se.step(x, y)
      sr.step(x, y)
      local tag = i <= 2 and ' (warm-up, eager)' or i == 3 and ' (captured, replayed)' or ' (replayed)'
      ok = D.close(t, r.crit.value, D.host(e.crit.value), 'step ' .. i .. ': the loss' .. tag, 1e-5) and ok
      ok = D.close(t, r.model.output, D.host(e.model.output), 'step ' .. i .. ': the logits', 1e-5) and ok
      ok = D.close(t, r.grads, D.host(e.grads), 'step ' .. i .. ': the gradient slab (' .. r.grads:numel() ..
                   ' values)', 1e-5) and ok
    end
    t.eq(sr.captures, 1, 'one capture')
    t.eq(sr.replays, 3, 'and three replays')
    local me, mr = e.stats:summary(), r.stats:summary()
    t.eq(mr.n, me.n, 'the sums count the same examples (' .. me.n .. ')')
    t.close(mr.loss, me.loss, 1e-5, 'and the same mean loss')
    -- a smaller batch runs eagerly beside the graph, which still replays
    local x, y = crlab.randn(3, 3, 32, 32), labels(3, 10)
    se.step(x, y)
    sr.step(x, y)
    D.close(t, r.crit.value, D.host(e.crit.value), 'a batch of 3 beside the graph of 4: the same loss', 1e-5)
    x, y = crlab.randn(4, 3, 32, 32), labels(4, 10)
    se.step(x, y)
    sr.step(x, y)
    D.close(t, r.grads, D.host(e.grads), 'and a batch of 4 after it, replayed: the same gradients', 1e-5)
    t.eq(sr.replays, 4, 'that was a replay')
    sr.reset()
    t.ok(sr.g == nil, 'reset frees the graph')
  end},

  {'trainer step with cuda-graph: 5 steps give the losses and weights of 5 eager steps', function()
    local opts = {channels = 1, classes = 10, size = 28}
    local runs = {}
    for k, graph in ipairs({false, true}) do
      local s = model_on_device('cnn', 50, opts)
      local opt = optim.sgd(s.params, s.grads, {momentum = 0.9, nesterov = true, weightDecay = 5e-4,
                                                 noDecay = {'bn', 'bias'}}, s.ranges)
      local st = train.stepper(s.model, s.crit, s.grads, s.stats, dev, graph)
      crlab.manualSeed(51)
      local losses = {}
      for i = 1, 5 do
        st.step(crlab.randn(8, 1, 28, 28), labels(8, 10))
        optim.clipGradNorm(s.grads, 5) -- reads back: after the replay, outside the graph
        opt:step(0.05 * (1 - (i - 1) / 5)) -- a learning rate that changes every step
        losses[i] = D.host(s.crit.value)[1]
      end
      runs[k] = {losses = losses, params = s.params, st = st}
    end
    local worst = 0
    for i = 1, 5 do
      worst = math.max(worst, math.abs(runs[2].losses[i] - runs[1].losses[i]) / (1 + math.abs(runs[1].losses[i])))
    end
    t.ok(worst <= 1e-5, string.format('losses of 5 steps agree (%.4f -> %.4f; worst relative difference %.2g)',
                                      runs[1].losses[1], runs[1].losses[5], worst))
    D.close(t, runs[2].params, D.host(runs[1].params), 'weights after 5 steps', 1e-5)
    t.eq(runs[2].st.replays, 3, 'steps 3-5 were replays of the graph')
    runs[2].st.reset()
  end},

  {'an allocation during capture fails, naming it, and the stream stays usable', function()
    if D.stand_in then return t.skip('the stand-in does not capture') end
    local a = crlab.randn(12345, 7)
    local ad = a:cuda()
    collectgarbage()
    collectgarbage()
    crlab.cuda.emptyCache() -- nothing cached: a new tensor needs cudaMalloc
    local ok, err = pcall(crlab.cuda.graph, function() local _ = ad * 2 end)
    t.ok(not ok and tostring(err):find('would allocate during CUDA graph capture: run a step eagerly first', 1,
                                       true) ~= nil, 'the capture fails: ' .. tostring(err))
    D.close(t, ad * 3, a * 3, 'the stream works after it', 1e-6)
    local outd = D.to(crlab.zeros(12345, 7))
    local g = crlab.cuda.graph(function() check(C.crl_tensor_binary_scalar(outd, ad, 2, C.CRL_OP_MUL, 0)) end)
    g:replay()
    D.close(t, outd, a * 2, 'and so does a graph captured next', 1e-6)
    g:free()
  end},

  {'a read back during capture fails, naming it, and the stream stays usable', function()
    if D.stand_in then return t.skip('the stand-in does not capture') end
    local a = crlab.randn(50, 3)
    local ad, yd, crit = a:cuda(), labels(50, 3):cuda(), crlab.loss.ce{}
    crit:forward(ad, yd) -- eagerly first: the loss's buffers are made
    local cases = {
      {'a copy to the host', function() local _ = ad:cpu() end, 'reading 600 bytes back to the host'},
      {'a sum of all elements', function() local _ = ad:sum() end, 'reading a reduction of all elements back'},
      {'crlab.cuda.synchronize', function() crlab.cuda.synchronize() end, 'waiting for the GPU'},
      {'a loss value', function() local _ = crit:forward(ad, yd) end, 'reading the loss value back'},
      {'a copy from the host', function() ad:copy(a) end, 'copying host memory to the device'},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(crlab.cuda.graph, c[2])
      t.ok(not ok and tostring(err):find(c[3], 1, true) ~= nil and tostring(err):find('during CUDA graph capture',
           1, true) ~= nil, c[1] .. ' in a capture fails, naming it: ' .. tostring(err))
    end
    D.close(t, ad + 1, a + 1, 'the stream works after them', 1e-6)
    t.close(ad:sum(), a:sum(), 1e-4, 'and reads back again')
  end},

  {'train.run with --cuda-graph: the losses of the run without it', function()
    if D.stand_in then return t.skip('--cuda-graph needs --device cuda') end
    -- a tiny Fashion-MNIST-format folder: 44 images (5 batches of 8 and one of 4), 16 test images
    local tmp = os.tmpname()
    os.remove(tmp)
    os.execute('mkdir -p ' .. tmp)
    local function be32(n)
      return string.char(math.floor(n / 2^24) % 256, math.floor(n / 2^16) % 256, math.floor(n / 256) % 256, n % 256)
    end
    local function write(name, n, seed)
      math.randomseed(seed)
      local px, lb = {}, {}
      for i = 1, n do
        local c = (i * 7 + seed) % 10
        lb[i] = string.char(c)
        for r = 0, 27 do
          for _ = 0, 27 do px[#px + 1] = string.char(math.floor(r / 3) == c and math.random(150, 255) or math.random(0, 60)) end
        end
      end
      local f = assert(io.open(tmp .. '/' .. name .. '-images-idx3-ubyte', 'wb'))
      f:write('\0\0\8\3' .. be32(n) .. be32(28) .. be32(28) .. table.concat(px))
      f:close()
      f = assert(io.open(tmp .. '/' .. name .. '-labels-idx1-ubyte', 'wb'))
      f:write('\0\0\8\1' .. be32(n) .. table.concat(lb))
      f:close()
    end
    write('train', 44, 1)
    write('t10k', 16, 2)
    local function run(extra)
      local a = {'--data', tmp, '--batch', '8', '--lr', '0.05', '--quiet', '--epochs', '2', '--device', 'cuda',
                 '--workers', '1', '--clip', '5', '--out', tmp .. '/run' .. #extra}
      for _, v in ipairs(extra) do a[#a + 1] = v end
      return train.run(train.parse(a))
    end
    local eager, graph = run({}), run({'--cuda-graph'})
    for e = 1, 2 do
      t.close(graph.history[e].train_loss, eager.history[e].train_loss, 1e-5, 'epoch ' .. e .. ': the training loss')
      t.close(graph.history[e].test_loss, eager.history[e].test_loss, 1e-5, 'epoch ' .. e .. ': the test loss')
    end
    D.close(t, graph.params, eager.params:cpu(), 'the weights after 2 epochs', 1e-5)
    os.execute("rm -rf '" .. tmp .. "'")
  end},
})

if tf32 ~= nil then
  crlab.cuda.allowTF32(tf32)
  crlab.cuda.deterministic(determ)
end
t.done()
