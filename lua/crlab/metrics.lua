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
  local out = {}
  for b = 0, self.nbins - 1 do
    local e = C.CRL_STAT_BINS + 3 * b
    local count = v[e]
    out[b + 1] = {lo = b / self.nbins, hi = (b + 1) / self.nbins, count = count,
                  confidence = v[e + 1] / count, accuracy = v[e + 2] / count, confidenceSum = v[e + 1],
                  correct = v[e + 2]}
  end
  return out
end

function Stats:__tostring()
  local s = self:summary()
  return string.format('crlab.metrics{n = %d, loss = %.4f, acc = %.4f, top5 = %.4f, ece = %.4f}', s.n, s.loss,
                       s.acc, s.top5, s.ece)
end

-- The summary of one batch: crlab.metrics.batch(logits, labels[, bins]).
function M.batch(logits, labels, bins)
  return M.new{bins = bins}:add(logits, labels):summary()
end

return M
