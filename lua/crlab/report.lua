-- crlab.report: a suite's results from its runs' metrics.jsonl files, per
-- dataset x architecture x loss: mean and sample standard deviation over
-- the finished runs (seeds, and folds where the dataset has them) of the
-- final and best top-1, the final top-5 (K > 5), ECE, one-off accuracy
-- (ordinal datasets: Adience) and training loss; each loss against CE
-- (the loss with id 'ce') as the difference of the means with Welch's
-- t-test; Markdown, CSV and JSON in the suite's folder, and plots:
-- test accuracy and training loss by epoch (mean over seeds, band
-- min..max) and a reliability diagram per loss (the final epoch's test_bins
-- summed over the runs).
--
--   local r = report.build(suite, runs)    -- suite from crlab.suite.load
--   io.write(report.write(suite, r))       -- files; returns the Markdown
local suite_lib = require 'crlab.suite'
local stats = require 'crlab.stats'
local json = require 'crlab.json'
local plot = require 'crlab.plot'
local train = require 'crlab.train'
local metrics = require 'crlab.metrics'

local M = {}

-- The per-run values, in the order of the tables: key, heading, scale
-- (100 for percentages), decimals, and the function reading them from a
-- run's records (nil when the run has none).
M.METRICS = {
  {'final_acc', 'final top-1 (%)', 100, 2, function(recs) return recs[#recs].test_acc end},
  {'best_acc', 'best top-1 (%)', 100, 2, function(recs)
    local b = metrics.bestRecord(recs)
    return b and b.test_acc
  end},
  {'final_top5', 'top-5 (%)', 100, 2, function(recs) return recs[#recs].test_top5 end},
  {'final_oneoff', '1-off (%)', 100, 2, function(recs) return recs[#recs].test_oneoff end},
  {'final_ece', 'ECE', 1, 4, function(recs) return recs[#recs].test_ece end},
  {'final_train_loss', 'train loss', 1, 4, function(recs) return recs[#recs].train_loss end},
}
-- compared with CE in the Markdown table (all are in the CSV and JSON)
local COMPARED = {final_acc = true, final_ece = true, final_oneoff = true}

local BASELINE = 'ce'

-- {groups = {{dataset, model, losses = {{id, label, runs, values, mean, std, vs_ce}}}}, missing}
function M.build(suite, runs)
  local groups, by_key = {}, {}
  local missing = {}
  for _, run in ipairs(runs) do
    local gk = run.dataset .. '/' .. run.model
    local g = by_key[gk]
    if not g then
      g = {dataset = run.dataset, model = run.model, epochs = run.options.epochs, losses = {}, by_loss = {}}
      by_key[gk] = g
      groups[#groups + 1] = g
    end
    local l = g.by_loss[run.loss.id]
    if not l then
      l = {id = run.loss.id, label = run.loss.label, runs = {}, values = {}, curves = {}, bins = nil}
      g.by_loss[run.loss.id] = l
      g.losses[#g.losses + 1] = l
    end
    local st = suite_lib.state(run)
    local recs = suite_lib.metrics(run)
    -- a run trained further than the suite now asks (its epochs lowered since): its epochs up to the suite's
    while #recs > 0 and recs[#recs].epoch > run.options.epochs do recs[#recs] = nil end
    if st.state ~= 'done' or #recs < run.options.epochs then
      missing[#missing + 1] = run.id .. ': ' .. suite_lib.describe(st)
    else
      l.runs[#l.runs + 1] = run.id
      for _, m in ipairs(M.METRICS) do
        local v = m[5](recs)
        if type(v) == 'number' then
          l.values[m[1]] = l.values[m[1]] or {}
          table.insert(l.values[m[1]], v)
        end
      end
      l.curves[#l.curves + 1] = recs
      local bins = recs[#recs].test_bins
      if type(bins) == 'table' then
        l.bins = l.bins or {}
        for b, row in ipairs(bins) do
          local acc = l.bins[b] or {0, 0, 0}
          for k = 1, 3 do acc[k] = acc[k] + (row[k] or 0) end
          l.bins[b] = acc
        end
      end
    end
  end
  for _, g in ipairs(groups) do
    local base = g.by_loss[BASELINE]
    for _, l in ipairs(g.losses) do
      l.n = #l.runs
      l.mean, l.std = {}, {}
      for k, vs in pairs(l.values) do
        l.mean[k] = #vs > 0 and stats.mean(vs) or nil
        l.std[k] = stats.std(vs)
      end
      if base and l ~= base then
        l.vs_ce = {}
        for k, vs in pairs(l.values) do
          local bv = base.values[k]
          if bv and #vs > 0 and #bv > 0 then
            local w = stats.welch(vs, bv)
            l.vs_ce[k] = w or {diff = stats.mean(vs) - stats.mean(bv)}
          end
        end
      end
    end
  end
  return {groups = groups, missing = missing}
end

local function fmt(v, scale, dec)
  if v == nil then return 'n/a' end
  return string.format('%.' .. dec .. 'f', v * scale)
end

local function fmt_p(w)
  if not w or not w.p then return 'n/a' end
  if w.p < 1e-4 then return string.format('%.1e', w.p) end
  return string.format('%.3g', w.p)
end

local function signed(v, scale, dec)
  if v == nil then return 'n/a' end
  return string.format('%+.' .. dec .. 'f', v * scale)
end

-- The columns a group shows: those with a value for some loss.
local function columns(g)
  local cols = {}
  for _, m in ipairs(M.METRICS) do
    for _, l in ipairs(g.losses) do
      if l.values[m[1]] then
        cols[#cols + 1] = m
        break
      end
    end
  end
  return cols
end

function M.markdown(suite, r)
  local out = {string.format('# Suite %s', suite.name), '',
               string.format('From %s; runs in %s. Mean ± sample standard deviation over the finished runs ' ..
                             '(n: seeds, times folds where the dataset has them); "vs CE": the difference of the ' ..
                             'means (percentage points for accuracies) and the two-sided p-value of Welch\'s ' ..
                             't-test; n/a with fewer than 2 runs.', suite.file, suite.out), ''}
  for _, g in ipairs(r.groups) do
    out[#out + 1] = string.format('## %s / %s (%d epochs)', g.dataset, g.model, g.epochs)
    out[#out + 1] = ''
    local cols = columns(g)
    local head, rule = {'loss', 'n'}, {'---', '---:'}
    for _, m in ipairs(cols) do
      head[#head + 1] = m[2]
      rule[#rule + 1] = '---:'
    end
    for _, m in ipairs(cols) do
      if COMPARED[m[1]] then
        head[#head + 1] = m[2]:gsub(' %(%%%)', '') .. ' vs CE'
        head[#head + 1] = 'p'
        rule[#rule + 1], rule[#rule + 2] = '---:', '---:'
      end
    end
    out[#out + 1] = '| ' .. table.concat(head, ' | ') .. ' |'
    out[#out + 1] = '|' .. table.concat(rule, '|') .. '|'
    for _, l in ipairs(g.losses) do
      local row = {l.label, tostring(l.n)}
      for _, m in ipairs(cols) do
        local k = m[1]
        if l.mean[k] == nil then
          row[#row + 1] = '—'
        else
          row[#row + 1] = fmt(l.mean[k], m[3], m[4]) .. ' ± ' .. fmt(l.std[k], m[3], m[4])
        end
      end
      for _, m in ipairs(cols) do
        if COMPARED[m[1]] then
          local w = l.vs_ce and l.vs_ce[m[1]]
          row[#row + 1] = w and signed(w.diff, m[3], m[4]) or '—'
          row[#row + 1] = w and fmt_p(w) or '—'
        end
      end
      out[#out + 1] = '| ' .. table.concat(row, ' | ') .. ' |'
    end
    out[#out + 1] = ''
  end
  if #r.missing > 0 then
    out[#out + 1] = string.format('Not finished, left out (%d): %s', #r.missing, table.concat(r.missing, '; '))
    out[#out + 1] = ''
  end
  return table.concat(out, '\n')
end

local function csv_cell(v)
  if v == nil then return '' end
  if type(v) == 'number' then return string.format('%.10g', v) end
  v = tostring(v)
  if v:find('[,"\n]') then return '"' .. v:gsub('"', '""') .. '"' end
  return v
end

function M.csv(r)
  local head = {'dataset', 'model', 'loss', 'label', 'n'}
  for _, m in ipairs(M.METRICS) do
    for _, s in ipairs({'mean', 'std', 'diff_vs_ce', 'p_vs_ce'}) do head[#head + 1] = m[1] .. '_' .. s end
  end
  local lines = {table.concat(head, ',')}
  for _, g in ipairs(r.groups) do
    for _, l in ipairs(g.losses) do
      local row = {g.dataset, g.model, l.id, l.label, l.n}
      for i = 1, 5 do row[i] = csv_cell(row[i]) end
      for _, m in ipairs(M.METRICS) do
        local w = l.vs_ce and l.vs_ce[m[1]] or {}
        local k = m[1]
        row[#row + 1], row[#row + 2], row[#row + 3], row[#row + 4] =
          csv_cell(l.mean[k]), csv_cell(l.std[k]), csv_cell(w.diff), csv_cell(w.p)
      end
      lines[#lines + 1] = table.concat(row, ',')
    end
  end
  return table.concat(lines, '\n') .. '\n'
end

function M.json(suite, r)
  local groups = {}
  for _, g in ipairs(r.groups) do
    local ls = {}
    for _, l in ipairs(g.losses) do
      ls[#ls + 1] = {id = l.id, label = l.label, n = l.n, runs = l.runs, values = l.values, mean = l.mean,
                     std = l.std, vs_ce = l.vs_ce}
    end
    groups[#groups + 1] = {dataset = g.dataset, model = g.model, epochs = g.epochs, losses = ls}
  end
  return json.encode({suite = suite.name, file = suite.file, groups = groups, missing = r.missing}) .. '\n'
end

-- Per epoch over a loss's runs: mean, min and max of field.
local function curve(l, field, scale)
  local x, y, lo, hi = {}, {}, {}, {}
  local n = math.huge
  for _, recs in ipairs(l.curves) do n = math.min(n, #recs) end
  for e = 1, n == math.huge and 0 or n do
    local vs = {}
    for _, recs in ipairs(l.curves) do
      local v = recs[e][field]
      if type(v) == 'number' then vs[#vs + 1] = v * scale end
    end
    if #vs > 0 then
      x[#x + 1] = l.curves[1][e].epoch or e
      y[#y + 1], lo[#lo + 1], hi[#hi + 1] = stats.mean(vs), math.min(unpack(vs)), math.max(unpack(vs))
    end
  end
  return x, y, lo, hi
end

local function safe(s) return (s:gsub('[^%w%._%-]', '_')) end

-- The PNGs of one group; returns their paths.
function M.plots(dir, g)
  local files = {}
  local base = dir .. '/' .. safe(g.dataset .. '-' .. g.model)
  for _, p in ipairs({{'test_acc', 100, 'Test accuracy (%) by epoch', 'test accuracy (%)', 'bottom right'},
                      {'train_loss', 1, 'Training loss by epoch', 'training loss', 'top right'}}) do
    local series = {}
    for _, l in ipairs(g.losses) do
      local x, y, lo, hi = curve(l, p[1], p[2])
      if #x > 0 then
        series[#series + 1] = {name = string.format('%s (n = %d, band min..max)', l.label, l.n), x = x, y = y,
                               lo = l.n > 1 and lo or nil, hi = l.n > 1 and hi or nil, style = 'linespoints'}
      end
    end
    if #series > 0 then
      local file = base .. '-' .. p[1] .. '.png'
      plot.lines{file = file, title = string.format('%s / %s: %s, mean over runs', g.dataset, g.model, p[3]),
                 xlabel = 'epoch', ylabel = p[4], series = series, key = p[5], xtics = g.epochs <= 20 and 1 or nil}
      files[#files + 1] = file
    end
  end
  for _, l in ipairs(g.losses) do
    if l.bins then
      local cx, acc, hx, frac, total = {}, {}, {}, {}, 0
      local bins = metrics.binTable(l.bins) -- the summed {count, confidence sum, correct}: means and bounds
      for _, b in ipairs(bins) do total = total + b.count end
      for _, b in ipairs(bins) do
        hx[#hx + 1] = (b.lo + b.hi) / 2
        frac[#frac + 1] = total > 0 and b.count / total or 0
        if b.count > 0 then
          cx[#cx + 1] = b.confidence
          acc[#acc + 1] = b.accuracy
        end
      end
      if #cx > 0 then
        local file = base .. '-reliability-' .. safe(l.id) .. '.png'
        plot.lines{file = file, title = string.format('%s / %s, %s: reliability (final epoch, %d runs, %d test ' ..
                                                      'predictions)', g.dataset, g.model, l.label, l.n, total),
                   xlabel = 'confidence (max softmax probability)', ylabel = 'accuracy; fraction of predictions',
                   yrange = {0, 1}, key = 'top left',
                   series = {{name = 'accuracy at the bin\'s mean confidence', x = cx, y = acc, style = 'linespoints'},
                             {name = 'perfect calibration', x = {0, 1}, y = {0, 1}},
                             {name = 'fraction of predictions per bin', x = hx, y = frac, style = 'impulses'}}}
        files[#files + 1] = file
      end
    end
  end
  return files
end

-- Writes report.md, report.csv, report.json and plots/*.png in dir (the
-- suite's folder by default); returns the Markdown followed by the list of
-- files.
function M.write(suite, r, dir)
  dir = dir or suite.out
  train.mkdir_p(dir)
  local md = M.markdown(suite, r)
  local files = {dir .. '/report.md', dir .. '/report.csv', dir .. '/report.json'}
  train.replace_file(files[1], md)
  train.replace_file(files[2], M.csv(r))
  train.replace_file(files[3], M.json(suite, r))
  local note
  if plot.available() then
    train.mkdir_p(dir .. '/plots')
    for _, g in ipairs(r.groups) do
      for _, f in ipairs(M.plots(dir .. '/plots', g)) do files[#files + 1] = f end
    end
  else
    note = 'no plots: gnuplot was not found (apt-get install gnuplot-nox)'
  end
  return md .. '\nwritten: ' .. table.concat(files, ', ') .. (note and '\n' .. note or '') .. '\n'
end

return M
