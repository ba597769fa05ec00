-- crlab.metrics and the trainer's evaluate() against a plain Lua loop over
-- the softmax probabilities (the loop evaluate() ran before the sums moved
-- to C): top-1, top-5, ECE and loss on random logits with ties, K < 5,
-- confidence exactly 1; a NaN logit is an error naming the shapes.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local metrics = require 'crlab.metrics'
local train = require 'crlab.train'

local BINS = 15

-- the reference: the old evaluate() loop, verbatim in its rules
local function reference(batches, crit_sum)
  local n, loss, correct, top5, norm, oneoff = 0, 0, 0, 0, 0, 0
  local bin_n, bin_conf, bin_acc = {}, {}, {}
  for b = 1, BINS do bin_n[b], bin_conf[b], bin_acc[b] = 0, 0, 0 end
  for _, xy in ipairs(batches) do
    local out, y = xy[1], xy[2]
    if crit_sum then loss = loss + crit_sum:forward(out, y) end
    local probs = out:softmax(2)
    local k = probs:size(2)
    local p = ffi.cast('float *', crlab.C.crl_tensor_data(probs))
    local yl = ffi.cast('int32_t *', crlab.C.crl_tensor_data(y))
    local zc = out:contiguous()
    local zp = ffi.cast('float *', crlab.C.crl_tensor_data(zc))
    for r = 0, probs:size(1) - 1 do
      local sq, zbest, zarg = 0, -math.huge, 0
      for j = 0, k - 1 do
        local v = zp[r * k + j]
        sq = sq + v * v
        if v > zbest then zbest, zarg = v, j end
      end
      norm = norm + math.sqrt(sq)
      if math.abs(zarg - yl[r]) <= 1 then oneoff = oneoff + 1 end
      local row = p + r * k
      local label = yl[r]
      local best, arg, above = -1, 0, 0
      local py = row[label]
      for j = 0, k - 1 do
        local v = row[j]
        if v > best then best, arg = v, j end
        if v > py or (v == py and j < label) then above = above + 1 end
      end
      local hit = arg == label and 1 or 0
      correct = correct + hit
      if above < 5 then top5 = top5 + 1 end
      local bin = math.min(BINS, math.floor(best * BINS) + 1)
      bin_n[bin] = bin_n[bin] + 1
      bin_conf[bin] = bin_conf[bin] + best
      bin_acc[bin] = bin_acc[bin] + hit
    end
    n = n + probs:size(1)
  end
  local ece = 0
  for b = 1, BINS do
    if bin_n[b] > 0 then ece = ece + math.abs(bin_acc[b] - bin_conf[b]) / n end
  end
  return {loss = loss / n, acc = correct / n, top5 = top5 / n, ece = ece, n = n, bin_n = bin_n, bin_conf = bin_conf,
          bin_acc = bin_acc, logitNorm = norm / n, oneoff = oneoff / n}
end

-- logits rounded to halves in [-2, 2] (many exact ties), labels anywhere
local function tied_batch(n, k)
  local z = (crlab.randn(n, k) * 2):floor():div(2):clamp(-2, 2)
  local y = crlab.tensor(crlab.randperm(n):totable(), 'int32')
  for i = 1, n do y[i] = (y[i] * 7 + i) % k end
  return z, y
end

crlab.manualSeed(3)
for _, k in ipairs({10, 4, 2, 1}) do
  local batches = {}
  for b = 1, 4 do
    local z, y = tied_batch(30 + b, k)
    if b == 2 then
      for i = 1, z:size(1), 4 do z[i][(i % k) + 1] = 40 end -- confidence exactly 1
    end
    batches[b] = {z, y}
  end
  local m = metrics.new{bins = BINS}
  for _, xy in ipairs(batches) do m:add(xy[1], xy[2]) end
  local s, r = m:summary(), reference(batches)
  t.ok(s.n == r.n and s.batches == 4 and s.acc == r.acc and s.top5 == r.top5,
       string.format('K = %d with ties: top-1 %.4f (ref %.4f), top-%d %.4f (ref %.4f)', k, s.acc, r.acc,
                     math.min(k, 5), s.top5, r.top5))
  t.close(s.ece, r.ece, 1e-12, string.format('K = %d: ECE %.6f as the reference', k, s.ece), 1e-15)
  t.close(s.logitNorm, r.logitNorm, 1e-12, string.format('K = %d: mean logit norm %.4f as the reference', k,
                                                           s.logitNorm), 1e-15)
  t.ok(s.oneoff == r.oneoff and s.oneoff >= s.acc, string.format('K = %d: one-off accuracy %.4f as the reference ' ..
       '(first maximum within one class of the label; >= top-1)', k, s.oneoff))
  local bins = m:bins()
  local same = #bins == BINS
  for b = 1, BINS do
    same = same and bins[b].count == r.bin_n[b] and
           (r.bin_n[b] == 0 or math.abs(bins[b].confidence * bins[b].count - r.bin_conf[b]) < 1e-9)
  end
  t.ok(same, string.format('K = %d: every bin holds the reference count and confidence', k))
  if k == 10 then
    t.ok(r.bin_n[BINS] > 0 and bins[BINS].count == r.bin_n[BINS] and bins[BINS].hi == 1,
         string.format('confidence exactly 1.0 is in the last bin (%d examples there)', r.bin_n[BINS]))
  end
  if k < 5 then t.eq(s.top5, 1, 'K = ' .. k .. ' < 5: top-5 is top-K, every label is in it') end
end

-- evaluate(): model, criterion and batches as the trainer passes them
do
  local list = {}
  for b = 1, 3 do list[b] = {tied_batch(25, 10)} end
  local model = {forward = function(_, x) return x end, evaluate = function() end, training = function() end}
  local batches = {epoch = function()
    local i = 0
    return function()
      i = i + 1
      if list[i] then return i, list[i][1], list[i][2] end
    end
  end}
  local ev = train.evaluate(model, crlab.loss.crl{}, batches)
  local r = reference(list, crlab.loss.crl{reduction = 'sum'})
  t.ok(ev.n == 75 and ev.acc == r.acc and ev.top5 == r.top5, 'evaluate(): top-1 and top-5 as before')
  t.close(ev.ece, r.ece, 1e-12, 'evaluate(): ECE as before', 1e-15)
  t.close(ev.loss, r.loss, 1e-7, 'evaluate(): mean loss as before (summed from float32 per-example losses)')
  t.close(ev.logitNorm, r.logitNorm, 1e-12, 'evaluate(): the mean logit norm', 1e-15)
  local binsame = #ev.bins == BINS
  for b = 1, BINS do
    binsame = binsame and ev.bins[b][1] == r.bin_n[b] and math.abs(ev.bins[b][2] - r.bin_conf[b]) < 1e-9 and
              ev.bins[b][3] == r.bin_acc[b]
  end
  t.ok(binsame, 'evaluate(): bins as {count, confidence sum, correct}, the reference sums')
end

-- the loss sum and the NaN marker
do
  local m = metrics.new{bins = 0}
  local crit = crlab.loss.ce()
  local want = 0
  for b = 1, 5 do
    local z, y = tied_batch(8, 3)
    local _, per = crit:forwardTensor(z, y)
    want = want + crit:forward(z, y) * 8
    m:add(z, y, per)
  end
  local s = m:summary()
  t.close(s.loss, want / 40, 1e-7, 'the mean loss over 5 batches')
  t.ok(s.nanBatch == 0 and s.ece ~= s.ece, 'no NaN batch; no bins, no ECE (NaN)')
  local z, y = tied_batch(8, 3)
  z[3][2] = 0 / 0
  local _, per = crit:forwardTensor(z, y)
  m:add(z, y, per):add(z, y, per)
  t.eq(m:summary().nanBatch, 6, 'a NaN logit without bins: the loss marks batch 6, the first NaN one')
  t.ok(m:reset():summary().n == 0, 'reset empties the sums')
end

-- errors
do
  local z, y = tied_batch(6, 4)
  z[3][2] = 0 / 0
  local m = metrics.new()
  t.errors(function() m:add(z, y) end, 'the confidence of example 2 (0-based) is nan: its logits hold NaN or ' ..
           'infinite values (logits (6, 4), labels (6))', 'a NaN logit with bins fails naming the example and shapes')
  t.eq(m:summary().n, 0, 'and adds nothing')
  local ok_line = debug.getinfo(1, 'l').currentline + 1
  local ok2, err = pcall(function() m:add(z, y) end)
  t.ok(not ok2 and err:find('test_metrics.lua:' .. ok_line, 1, true), 'the error points at the caller: ' .. tostring(err))
  t.errors(function() m:add(crlab.zeros(2, 3), crlab.tensor({0, 3}, 'int32')) end, 'label 3 of example 1',
           'a label out of range')
  t.errors(function() m:add(crlab.zeros(2, 3), {0, 1}) end, 'labels must be an int32 tensor', 'a table of labels')
  t.errors(function() metrics.new{bins = 1000} end, 'bins must be an integer in 0..256', '1000 bins')
  t.errors(function() metrics.new{bnis = 10} end, "unknown option 'bnis'", 'a misspelt option')
  local one = metrics.batch(crlab.tensor{{0, 5, 1}, {2, 0, 0}}, crlab.tensor({1, 1}, 'int32'))
  t.ok(one.acc == 0.5 and one.top5 == 1 and one.n == 2, 'metrics.batch: the summary of one batch')
  t.ok(tostring(metrics.new()):find('^crlab.metrics{n = 0'), 'a metrics object prints its summary')
end
-- the trainer reads its sums back late, yet names the batch the loss became NaN in
do
  local dir = os.tmpname()
  os.remove(dir)
  os.execute('mkdir -p ' .. dir)
  local function be32(n)
    return string.char(math.floor(n / 2^24) % 256, math.floor(n / 2^16) % 256, math.floor(n / 256) % 256, n % 256)
  end
  local function write(name, n, bytes)
    local f = assert(io.open(dir .. '/' .. name, 'wb'))
    f:write(bytes)
    f:close()
  end
  math.randomseed(5)
  for _, split in ipairs({{'train', 64}, {'t10k', 16}}) do
    local n, px, lab = split[2], {}, {}
    for i = 1, n * 784 do px[i] = string.char(math.random(0, 255)) end
    for i = 1, n do lab[i] = string.char(i % 10) end
    write(split[1] .. '-images-idx3-ubyte', n, '\0\0\8\3' .. be32(n) .. be32(28) .. be32(28) .. table.concat(px))
    write(split[1] .. '-labels-idx1-ubyte', n, '\0\0\8\1' .. be32(n) .. table.concat(lab))
  end
  local o = train.parse({'--data', dir, '--batch', '16', '--lr', '1e30', '--quiet', '--threads', '1', '--workers', '1',
                         '--epochs', '1', '--out', dir .. '/run'})
  t.errors(function() train.run(o) end, 'the loss became NaN at epoch 1, batch 2 (lr ',
           'a diverging run names the first batch with a NaN loss and its learning rate')
  os.execute('rm -rf ' .. dir)
end
-- a run's metrics.jsonl: one reader (suite, report, explorer) and one rule for the best epoch
do
  local path = os.tmpname()
  require('testio').write(path, '{"epoch":1,"test_acc":0.5}\n{"epoch":2,"test_acc":0.7}\n\n' ..
                                '{"epoch":3,"test_acc":0.7}\n{"epoch":4,"te')
  local recs, bad = metrics.readRecords(path)
  t.ok(#recs == 3 and #bad == 1 and bad[1].line == 5 and bad.lines == 5,
       'readRecords: 3 records, the cut last line (5) reported, the blank one skipped')
  t.eq(metrics.bestRecord(recs).epoch, 2, 'bestRecord: the highest test accuracy, the first of equals')
  t.eq(metrics.bestRecord({{epoch = 1}}), nil, 'bestRecord: nil without accuracies')
  t.eq(metrics.readRecords(path .. '.none'), nil, 'readRecords: nil for a missing file')
  os.remove(path)
end

t.done()
