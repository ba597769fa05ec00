-- crlab.metrics: classification statistics (loss, top-1, top-5, expected
-- calibration error) summed batch by batch in a C tensor, where the
-- logits are, and read back into Lua only when asked.
--
--   local m = crlab.metrics.new{bins = 15}      -- bins = 0: no ECE
--   for _, x, y in batches:epoch() do
--     local out = model:forward(x)
--     local _, per = crit:forwardTensor(out, y)  -- per-example losses
--     m:add(out, y, per)                         -- per may be nil
--   end
--   local s = m:summary()  -- {n, batches, loss, acc, top5, ece, nanBatch, logitNorm, oneoff}
--   m:reset()
--
-- The rules (core/cpu/metrics.c): ranks from the logits, ties to the lower
-- class index; top5 uses k = min(5, K); confidence is the largest softmax
-- probability and 1.0 falls in the last bin; a NaN or infinite logit is
-- an error when there are bins. Fractions of no examples are NaN.
-- logitNorm is the mean L2 norm of the logit rows; oneoff the fraction of
-- examples whose first maximum is within one class of the label (for
-- ordinal labels: Adience's age groups).
--
-- The sums live on the device of the logits: the first add of CUDA logits
-- moves them there, and they stay (each batch is summed on the GPU, with no
-- read-back); summary and bins read them back.
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

local M = {}

local Stats = {}
Stats.__index = Stats

function M.new(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then error('crlab.metrics.new takes a table of options, got ' .. type(opts), 2) end
  for k in pairs(opts) do
    if k ~= 'bins' then error("crlab.metrics.new: unknown option '" .. tostring(k) .. "' (bins)", 2) end
  end
  local bins = opts.bins or 15
  if type(bins) ~= 'number' or bins % 1 ~= 0 or bins < 0 or bins > 256 then
    error('crlab.metrics.new: bins must be an integer in 0..256, got ' .. tostring(bins), 2)
  end
  local self = setmetatable({nbins = bins, stats = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0}),
                             _summary = ffi.new('crl_batch_summary')}, Stats)
  return self:reset()
end

function Stats:reset()
  check(C.crl_batch_stats_reset(self.stats, self.nbins))
  return self
end

-- logits (N, K) float32, labels (N) int32, loss: nil or the (N) per-example
-- losses (Criterion:forwardTensor's second result).
function Stats:add(logits, labels, loss)
  if not T.isTensor(logits) then error('metrics add: logits must be a tensor, got ' .. type(logits), 2) end
  if not T.isTensor(labels) then error('metrics add: labels must be an int32 tensor, got ' .. type(labels), 2) end
  if loss ~= nil and not T.isTensor(loss) then
    error('metrics add: loss must be nil or a tensor of per-example losses, got ' .. type(loss), 2)
  end
  if logits.device ~= self.stats.device then
    self.stats = logits.device == C.CRL_CPU and self.stats:cpu() or self.stats:cuda()
  end
  check(C.crl_batch_stats(self.stats, logits, labels, loss, self.nbins))
  return self
end

-- The sums so far as Lua numbers: the one read-back.
function Stats:summary()
  local s = self._summary
  check(C.crl_batch_stats_summary(s, self.stats))
  return {n = tonumber(s.examples), batches = tonumber(s.batches), loss = s.loss, acc = s.top1, top5 = s.topk,
          ece = s.ece, nanBatch = tonumber(s.nan_batch), logitNorm = s.logit_norm, oneoff = s.oneoff}
end

-- Per confidence bin (a reliability diagram): {lo, hi, count, confidence,
-- accuracy, confidenceSum, correct}: the means over the bin (NaN when it is
-- empty) and the sums they come from.
function Stats:bins()
  local n = C.CRL_STAT_BINS + 3 * self.nbins
  local v = ffi.new('double[?]', n)
  check(C.crl_batch_stats_read(v, self.stats, n))
  local sums = {}
  for b = 0, self.nbins - 1 do
    local e = C.CRL_STAT_BINS + 3 * b
    sums[b + 1] = {v[e], v[e + 1], v[e + 2]}
  end
  return M.binTable(sums)
end

-- The same from the sums {count, confidence sum, correct} of each of B
-- equal bins on [0, 1] (as metrics.jsonl's test_bins holds them).
function M.binTable(sums)
  local out, nb = {}, #sums
  for b, s in ipairs(sums) do
    out[b] = {lo = (b - 1) / nb, hi = b / nb, count = s[1], confidence = s[2] / s[1], accuracy = s[3] / s[1],
              confidenceSum = s[2], correct = s[3]}
  end
  return out
end

function Stats:__tostring()
  local s = self:summary()
  return string.format('crlab.metrics{n = %d, loss = %.4f, acc = %.4f, top5 = %.4f, ece = %.4f}', s.n, s.loss,
                       s.acc, s.top5, s.ece)
end

---------------------------------------------------------------------------
-- a run's metrics.jsonl (one JSON record per epoch, as crlab.train writes it)

-- The records of the file at path (nil when it cannot be opened) and the
-- lines that are not records, {line = n, why = text}. A last line cut by an
-- interruption is one of those; the trainer's resume rewrites the file
-- without it, and readers decide what else they accept.
function M.readRecords(path)
  local f = io.open(path, 'r')
  if not f then return nil end
  local json = require 'crlab.json'
  local recs, bad, n = {}, {}, 0
  for line in f:lines() do
    n = n + 1
    if line:match('%S') then
      local ok, rec = pcall(json.decode, line)
      if ok and type(rec) == 'table' and type(rec.epoch) == 'number' then
        recs[#recs + 1] = rec
      else
        bad[#bad + 1] = {line = n, why = ok and 'no epoch' or tostring(rec)}
      end
    end
  end
  f:close()
  bad.lines = n
  return recs, bad
end

-- The record of the highest test accuracy (the first of equals), or nil.
function M.bestRecord(recs)
  local best
  for _, r in ipairs(recs) do
    if type(r.test_acc) == 'number' and (best == nil or r.test_acc > best.test_acc) then best = r end
  end
  return best
end

-- The summary of one batch: crlab.metrics.batch(logits, labels[, bins]).
function M.batch(logits, labels, bins)
  return M.new{bins = bins}:add(logits, labels):summary()
end

return M
