-- scripts/bench_gpu.lua -- the GPU half of scripts/bench.lua (--device cuda):
-- training images/s (forward + backward + SGD step with momentum and weight
-- decay) of the CIFAR ResNet-20, -56 and -110 (3x32x32) and ResNet-50
-- (3x224x224), batch 128, on the first GPU, with crlab.cuda.synchronize()
-- around the timed steps; PyTorch in the same run on the same GPU
-- (scripts/bench_torch.py --device cuda: cudnn.benchmark, TF32 allowed,
-- NCHW and channels_last, then torch.compile under a time limit, and bf16
-- autocast on request). The ratio is crlab / the better PyTorch eager layout.
--
-- Time: PyTorch runs in child processes started one per model (importing
-- torch and starting CUDA costs a few seconds each); the compile column
-- comes last, so the eager columns survive a tight --budget.
local crlab = require 'crlab'
local models = require 'crlab.models'
local optim = require 'crlab.optim'
local json = require 'crlab.json'
local C = crlab.C

local M = {}

local CONFIGS = {
  {'resnet20', {128, 3, 32, 32}}, {'resnet56', {128, 3, 32, 32}}, {'resnet110', {128, 3, 32, 32}},
  {'resnet50', {128, 3, 224, 224}},
}

local function now() return C.crl_time_seconds() end

local function options(args)
  local o = {iters = 20, budget = math.huge, compile_limit = 90, compile = true, bf16 = false, torch = true}
  for i = 1, #args do
    local a, v = args[i], args[i + 1]
    if a == '--iters' then o.iters = tonumber(v) end
    if a == '--budget' then o.budget = tonumber(v) end
    if a == '--compile-limit' then o.compile_limit = tonumber(v) end
    if a == '--no-compile' then o.compile = false end
    if a == '--bf16' then o.bf16 = true end
    if a == '--no-torch' then o.torch = false end
    if a == '--models' then
      o.only = {}
      for m in v:gmatch('[^,]+') do o.only[m] = true end
    end
  end
  return o
end

-- crlab's training images/s on the GPU, or nil and the error. mode:
-- 'eager'; 'graph' (forward, loss and backward replayed as one CUDA graph,
-- the optimiser step eager, as train.lua --cuda-graph does); 'bf16'.
local function measure(name, shape, iters, mode)
  mode = mode or 'eager'
  local ok, res = pcall(function()
    crlab.cuda.bf16(mode == 'bf16')
    crlab.manualSeed(0)
    local model = models.build(name, {channels = shape[2], classes = 10, size = shape[3]}):skipInputGradient()
    model:cuda()
    local params, grads, ranges = model:getParameters()
    local opt = optim.sgd(params, grads, {momentum = 0.9, weightDecay = 5e-4}, ranges)
    local crit = crlab.loss.ce()
    local y = crlab.randperm(shape[1])
    for i = 1, shape[1] do y[i] = y[i] % 10 end
    local x, yd = crlab.randn(shape):cuda(), y:cuda()
    local function pass()
      local out = model:forward(x)
      crit:forwardTensor(out, yd) -- the loss stays on the device: no read-back, no sync per step
      grads:zero()
      model:backward(x, crit:backward(out, yd))
    end
    local g
    local function step()
      if g then g:replay() else pass() end
      opt:step(0.01)
    end
    local t0 = now()
    for _ = 1, 3 do step() end
    if mode == 'graph' then g = crlab.cuda.graph(pass) end
    crlab.cuda.synchronize()
    local warm = now() - t0
    t0 = now()
    for _ = 1, iters do step() end
    crlab.cuda.synchronize()
    local ips = shape[1] * iters / (now() - t0)
    if g then g:free() end
    return {ips = ips, warm = warm}
  end)
  pcall(crlab.cuda.bf16, false)
  collectgarbage()
  collectgarbage()
  pcall(crlab.cuda.emptyCache) -- leave the memory to the PyTorch process that follows
  if ok then return res end
  return nil, tostring(res):gsub('\n.*', '')
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- One bench_torch.py run under `timeout`: the decoded JSON line, or nil and why.
local function torch_run(name, batch, iters, layout, extra, limit)
  local py = os.getenv('CRLAB_PYTHON') or 'python3'
  local errf = os.tmpname()
  -- the exit status comes back on stdout: LuaJIT's popen close does not return it
  local cmd = string.format('timeout -k 5 %d %s scripts/bench_torch.py %s %d 1 %d 0 %s --device cuda %s 2>%s; ' ..
                            'echo "rc=$?"', math.max(1, math.floor(limit)), py, name, batch, iters, layout,
                            extra or '', shell_quote(errf))
  local p = io.popen(cmd)
  local out = p:read('*a')
  p:close()
  local code = tonumber(out:match('rc=(%d+)%s*$'))
  local f = io.open(errf)
  local err = f and f:read('*a') or ''
  if f then f:close() end
  os.remove(errf)
  local line = out:match('{.-}')
  if line then return json.decode(line) end
  if code == 124 or code == 137 then return nil, string.format('over the %ds limit', math.floor(limit)) end
  local last = err:match('([^\n]+)\n*$') or ('exit ' .. tostring(code))
  return nil, last
end

local function fmt(v) return v and string.format('%.0f', v) or 'n/a' end
local function ratio(a, b) return (a and b and b > 0) and string.format('%.2fx', a / b) or 'n/a' end

function M.main(args)
  local o = options(args)
  local start = now()
  local function left() return o.budget - (now() - start) end
  if not crlab.cuda.available() then
    local _, why = pcall(function() return crlab.zeros(1):cuda() end)
    io.stderr:write('bench: --device cuda, but no CUDA device can be used here: ', tostring(why), '\n')
    return false
  end
  -- the same conditions as PyTorch's side: TF32 allowed (crlab's default)
  -- and convolution algorithms chosen by timing (cudnn.benchmark)
  pcall(crlab.cuda.allowTF32, true)
  pcall(crlab.cuda.benchmark, true)
  local gpu, bytes = crlab.cuda.deviceName()
  print(string.format('GPU: %s, %.0f GiB; training images/s (forward + backward + SGD step), batch 128, %d timed ' ..
                      'steps after 3 warm-up steps, synchronised around them; TF32 allowed and convolution ' ..
                      'algorithms autotuned on both sides', gpu, bytes / 2^30, o.iters))
  io.stdout:flush()
  local rows = {}
  for _, cfg in ipairs(CONFIGS) do
    if o.only == nil or o.only[cfg[1]] then rows[#rows + 1] = {name = cfg[1], shape = cfg[2]} end
  end
  local torch_version, torch_gpu
  -- pass 1: crlab and PyTorch eager, model by model
  for _, r in ipairs(rows) do
    if left() < 5 then
      r.note = 'not run: the time budget is spent'
    else
      r.crlab, r.err = measure(r.name, r.shape, o.iters)
      r.graph, r.graph_err = measure(r.name, r.shape, o.iters, 'graph')
      if o.bf16 then r.cbf16, r.bf16_err = measure(r.name, r.shape, o.iters, 'bf16') end
      if o.torch and left() > 10 then
        local pt, why = torch_run(r.name, r.shape[1], o.iters, 'both', nil, math.min(left() - 5, 240))
        if pt then
          torch_version, torch_gpu = pt.torch, pt.device_name
          r.nchw, r.nhwc = pt.train_ips_nchw, pt.train_ips_channels_last
          r.best_layout = (r.nhwc or 0) > (r.nchw or 0) and 'channels_last' or 'nchw'
          r.best = math.max(r.nchw or 0, r.nhwc or 0)
        else
          r.torch_err = why
        end
      end
      print(string.format('%-10s crlab %s%s, with CUDA graphs %s%s | PyTorch NCHW %s, channels_last %s | ratio %s',
                          r.name, fmt(r.crlab and r.crlab.ips), r.err and (' (' .. r.err .. ')') or '',
                          fmt(r.graph and r.graph.ips), r.graph_err and (' (' .. r.graph_err .. ')') or '',
                          fmt(r.nchw), fmt(r.nhwc), ratio(r.crlab and r.crlab.ips, r.best))
            .. (r.torch_err and ('  [PyTorch: ' .. r.torch_err .. ']') or ''))
      io.stdout:flush()
    end
  end
  -- pass 2: torch.compile (its compilation can take minutes: each run is
  -- limited, and skipped when the budget cannot hold the limit)
  if o.torch and o.compile then
    for _, r in ipairs(rows) do
      if r.best and r.best > 0 then
        local limit = math.min(o.compile_limit, left() - 5)
        if limit < 20 then
          r.compile_err = 'skipped: the time budget is spent'
        else
          local pt, why = torch_run(r.name, r.shape[1], o.iters, r.best_layout, '--compile', limit)
          r.compiled = pt and pt['train_ips_' .. r.best_layout]
          r.compile_err = not pt and why or nil
        end
        print(string.format('%-10s torch.compile (%s): %s%s', r.name, r.best_layout, fmt(r.compiled),
                            r.compile_err and ('  [' .. r.compile_err .. ']') or ''))
        io.stdout:flush()
      end
    end
  end
  if o.torch and o.bf16 then
    for _, r in ipairs(rows) do
      if r.best and r.best > 0 and left() > 30 then
        local pt, why = torch_run(r.name, r.shape[1], o.iters, r.best_layout, '--bf16', math.min(120, left() - 5))
        r.bf16 = pt and pt['train_ips_' .. r.best_layout]
        print(string.format('%-10s PyTorch bf16 autocast (%s): %s%s', r.name, r.best_layout, fmt(r.bf16),
                            pt and '' or ('  [' .. tostring(why) .. ']')))
        io.stdout:flush()
      end
    end
  end

  print()
  print(string.format('%s -- PyTorch %s%s', gpu, torch_version or (o.torch and 'did not run' or 'not asked for'),
                      torch_gpu and torch_gpu ~= gpu and (' on ' .. torch_gpu) or ''))
  local head = string.format('%-10s %-11s %9s %9s %9s %9s %7s %7s %9s %7s', 'model', 'input', 'crlab', 'cr graph',
                             'pt NCHW', 'pt NHWC', 'ratio', 'gr/pt', 'pt comp.', 'ratio')
  if o.bf16 then head = head .. string.format(' %9s %9s %7s', 'cr bf16', 'pt bf16', 'ratio') end
  print(head)
  local ok = true
  for _, r in ipairs(rows) do
    local c = r.crlab and r.crlab.ips
    ok = ok and c ~= nil
    local gr = r.graph and r.graph.ips
    local line = string.format('%-10s %-11s %9s %9s %9s %9s %7s %7s %9s %7s', r.name,
                               table.concat({r.shape[2], r.shape[3], r.shape[4]}, 'x'), fmt(c), fmt(gr),
                               fmt(r.nchw), fmt(r.nhwc), ratio(c, r.best), ratio(gr, r.best), fmt(r.compiled),
                               ratio(math.max(c or 0, gr or 0), r.compiled))
    if o.bf16 then
      local cb = r.cbf16 and r.cbf16.ips
      line = line .. string.format(' %9s %9s %7s', fmt(cb), fmt(r.bf16), ratio(cb, r.bf16))
    end
    print(line)
  end
  print('(images/s, batch 128; ratio = crlab eager / the better PyTorch eager layout, gr/pt = crlab with CUDA ' ..
        'graphs / the same, the last ratio = crlab\'s better / torch.compile; ' ..
        string.format('crlab warm-up (3 steps incl. autotuning): %s)',
                      table.concat((function()
                        local w = {}
                        for _, r in ipairs(rows) do
                          if r.crlab then w[#w + 1] = string.format('%s %.1fs', r.name, r.crlab.warm) end
                        end
                        return w
                      end)(), ', ')))
  for _, r in ipairs(rows) do
    if r.err then print(r.name .. ': crlab failed: ' .. r.err) end
    if r.graph_err then print(r.name .. ': crlab with CUDA graphs failed: ' .. r.graph_err) end
    if r.bf16_err then print(r.name .. ': crlab bf16 failed: ' .. r.bf16_err) end
    if r.note then print(r.name .. ': ' .. r.note) end
  end
  return ok
end

return M
