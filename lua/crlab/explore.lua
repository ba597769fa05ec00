-- crlab.explore: how the losses respond to the confidence of the true
-- class, to their parameters and to a given logit vector, and what trained
-- runs did (calibration, confidence, logit norm): tables, text plots in
-- the terminal, or PNGs.
--
--   local ex = crlab.explore
--   ex.curve{losses = {'ce', 'crl{alpha=1.5}', 'nllr'}, what = 'weight', terminal = true}
--   ex.sweep{loss = 'crl', param = 'alpha', values = {1, 1.5, 2, 4}, what = 'weight', file = 'a.png'}
--   ex.logits({2, 1, 0.1, -1}, 0)                  -- label 0-based, as in crlab.loss
--   ex.reliability({'runs/ce', 'runs/crl'}, {terminal = true})
--   ex.confidence('runs/crl', {epoch = 3, file = 'confidence.png'})
--   ex.logitNorm({'runs/ce', 'runs/crl', 'runs/nllr'}, {terminal = true})
--
-- Every loss value and gradient comes from crlab.loss (the C kernels,
-- forward and backward); nothing here restates a loss's formula. A loss is
-- named by a spec: 'crl', 'crl{alpha=2,beta=1}' (read by a pattern, never
-- run as Lua), a table {name = 'crl', alpha = 2} or a crlab.loss criterion;
-- 'eps' is another name for the label smoothing of 'ce'.
--
-- The curves put p_y on class 0 and spread the rest evenly over the other
-- K - 1 classes: logits z_0 = log(p_y (K - 1) / (1 - p_y)), z_j = 0, as
-- float32 (so the p_y the kernels see differs from the one asked by that
-- rounding, a relative 1e-7 of z_0). The gradient weight is
-- w = (dL/dz_y) / (dCE/dz_y) at the same logits: how much harder (w > 1) or
-- softer than cross-entropy the loss pushes an example of that confidence.
--
-- The run functions read RUN/metrics.jsonl as scripts/train.lua writes it
-- (test_bins, test_logit_norm, test_ece, test_acc per epoch).
local loss = require 'crlab.loss'
local T = require 'crlab.tensor'
local json = require 'crlab.json'
local plot = require 'crlab.plot'
local metrics = require 'crlab.metrics'

local M = {}

local function fail(fn, msg) error('crlab.explore.' .. fn .. ': ' .. msg, 0) end

-- a message raised by error(msg, 2) elsewhere, without its file:line
local function bare(msg) return (tostring(msg):gsub('^[^\n]-%.lua:%d+: ', '')) end

local function finite(v) return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge end

local function check_opts(fn, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= 'table' then fail(fn, 'expects a table of options, got ' .. type(opts)) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      fail(fn, "unknown option '" .. tostring(k) .. "' (" .. table.concat(names, ', ') .. ')')
    end
  end
  return opts
end

local function set(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

local PLOT_OPTS = {'file', 'terminal', 'title', 'width', 'height', 'yrange', 'logy', 'key', 'quiet'}

local function known_opts(extra)
  local all = {}
  for _, k in ipairs(PLOT_OPTS) do all[#all + 1] = k end
  for _, k in ipairs(extra) do all[#all + 1] = k end
  return set(all)
end

---------------------------------------------------------------------------
-- loss specs

local ALIASES = {eps = 'smoothing'}

-- 'name' or 'name{k=v,...}' -> name, {k = number}
local function parse_text(fn, s)
  local name, rest = s:match('^%s*([%a_][%w_]*)%s*(.-)%s*$')
  if not name then
    fail(fn, "loss spec '" .. s .. "' is not a name or name{key=value,...} (e.g. 'crl{alpha=1.5,beta=1}')")
  end
  local params = {}
  if rest ~= '' then
    local body = rest:match('^{(.*)}$')
    if not body then
      fail(fn, "loss spec '" .. s .. "': expected {key=value,...} after '" .. name .. "', got '" .. rest .. "'")
    end
    if body:match('%S') then
      for item in (body .. ','):gmatch('([^,]*),') do
        local k, v = item:match('^%s*([%a_][%w_]*)%s*=%s*(%S+)%s*$')
        if not k then fail(fn, "loss spec '" .. s .. "': '" .. item .. "' is not key=value") end
        local n = tonumber(v)
        if not finite(n) then
          fail(fn, "loss spec '" .. s .. "': " .. k .. " must be a finite number, got '" .. v .. "'")
        end
        if params[k] ~= nil then fail(fn, "loss spec '" .. s .. "' gives " .. k .. ' twice') end
        params[k] = n
      end
    end
  end
  return name, params
end

-- What makes a label: each parameter, except one left at a default of 0
-- (the smoothing of a plain 'ce').
local function label_of(name, names, values, defaults)
  local parts = {}
  for _, k in ipairs(names) do
    if not (values[k] == 0 and defaults[k] == 0) then parts[#parts + 1] = k .. '=' .. string.format('%g', values[k]) end
  end
  if #parts == 0 then return name end
  return name .. '{' .. table.concat(parts, ',') .. '}'
end

local Spec = {}
Spec.__index = Spec

-- A fresh criterion with reduction 'none' (its buffers are its own).
function Spec:criterion()
  local o = {reduction = 'none'}
  for k, v in pairs(self.params) do o[k] = v end
  return loss.byName(self.name, o)
end

function Spec:__tostring() return self.label end

-- explore.spec(s): the loss spec s (a string, a table or a criterion) read
-- and checked: {name, params (every parameter), label, :criterion()}.
function M.spec(s, fn)
  fn = fn or 'spec'
  if getmetatable(s) == Spec then return s end
  local name, given, text
  if type(s) == 'string' then
    text = s
    name, given = parse_text(fn, s)
  elseif loss.isCriterion(s) then
    name, given = s.name, {}
    for _, k in ipairs(s.param_names) do given[k] = s[k] end
    text = tostring(s)
  elseif type(s) == 'table' then
    name, given = s.name or s[1], {}
    for k, v in pairs(s) do
      if k ~= 'name' and k ~= 1 then given[k] = v end
    end
    if type(name) ~= 'string' then fail(fn, "a loss spec table needs name = 'ce' | 'nllr' | 'crl' | 'focal'") end
    local parts = {}
    for k, v in pairs(given) do parts[#parts + 1] = tostring(k) .. '=' .. tostring(v) end
    table.sort(parts)
    text = name .. (#parts > 0 and '{' .. table.concat(parts, ',') .. '}' or '')
  else
    fail(fn, "a loss is a name ('crl'), a spec string ('crl{alpha=2}'), a table ({name = 'crl', alpha = 2}) or a " ..
             'crlab.loss criterion, got ' .. type(s))
  end
  local ok, base = pcall(loss.byName, name)
  if not ok then fail(fn, "loss spec '" .. text .. "': " .. bare(base)) end
  local known, defaults = set(base.param_names), {}
  for _, k in ipairs(base.param_names) do defaults[k] = base[k] end
  local params = {}
  for k, v in pairs(given) do
    local key = ALIASES[k] or k
    if not known[key] then
      fail(fn, "loss spec '" .. text .. "': " .. name .. " has no parameter '" .. tostring(k) .. "' (it takes " ..
               (#base.param_names > 0 and table.concat(base.param_names, ', ') or 'none') .. ')')
    end
    if not finite(v) then
      fail(fn, "loss spec '" .. text .. "': " .. key .. ' must be a finite number, got ' .. tostring(v))
    end
    if params[key] ~= nil then fail(fn, "loss spec '" .. text .. "' gives " .. key .. ' twice') end
    params[key] = v
  end
  for _, k in ipairs(base.param_names) do
    if params[k] == nil then params[k] = defaults[k] end
  end
  local self = setmetatable({name = name, params = params, param_names = base.param_names, defaults = defaults}, Spec)
  self.label = label_of(name, base.param_names, params, defaults)
  -- the C side checks the values (alpha >= 0, smoothing in [0, 1), ...)
  local made, err = pcall(self.criterion, self)
  if not made then fail(fn, "loss spec '" .. text .. "': " .. bare(err)) end
  return self
end

local function specs_of(fn, list)
  if type(list) == 'string' or getmetatable(list) == Spec or loss.isCriterion(list) or
     (type(list) == 'table' and list.name) then
    list = {list}
  end
  if type(list) ~= 'table' or #list == 0 then fail(fn, 'losses must be a non-empty list of loss specs') end
  local out, seen = {}, {}
  for i, s in ipairs(list) do
    out[i] = M.spec(s, fn)
    if seen[out[i].label] then fail(fn, 'loss ' .. out[i].label .. ' is listed twice') end
    seen[out[i].label] = true
  end
  return out
end

---------------------------------------------------------------------------
-- text tables

local function num(v)
  if v == nil or v ~= v then return '-' end
  return string.format('%.5g', v)
end

-- rows: lists of cells; the first `head` rows are headers, underlined. A
-- cell is a string or {text, span = n} over n columns (centred). The first
-- column is left-aligned, the others right-aligned.
local function render(rows, head)
  local width = {}
  for _, r in ipairs(rows) do
    local j = 1
    for _, c in ipairs(r) do
      if type(c) == 'string' then width[j] = math.max(width[j] or 0, #c) end
      j = j + (type(c) == 'table' and c.span or 1)
    end
  end
  for _, r in ipairs(rows) do -- a spanning cell wider than its columns widens the last of them
    local j = 1
    for _, c in ipairs(r) do
      if type(c) == 'table' then
        local w = 2 * (c.span - 1)
        for k = j, j + c.span - 1 do w = w + (width[k] or 0) end
        local last = j + c.span - 1
        width[last] = (width[last] or 0) + math.max(0, #c[1] - w)
        j = j + c.span
      else
        j = j + 1
      end
    end
  end
  local out = {}
  for i, r in ipairs(rows) do
    local cells, j = {}, 1
    for _, c in ipairs(r) do
      if type(c) == 'table' then
        local w = 2 * (c.span - 1)
        for k = j, j + c.span - 1 do w = w + width[k] end
        local left = math.floor((w - #c[1]) / 2)
        cells[#cells + 1] = string.rep(' ', left) .. c[1] .. string.rep(' ', w - #c[1] - left)
        j = j + c.span
      else
        cells[#cells + 1] = j == 1 and c .. string.rep(' ', width[j] - #c) or string.rep(' ', width[j] - #c) .. c
        j = j + 1
      end
    end
    out[#out + 1] = (table.concat(cells, '  '):gsub('%s+$', ''))
    if i == head then
      local rule = {}
      for k = 1, #width do rule[k] = string.rep('-', width[k]) end
      out[#out + 1] = table.concat(rule, '  ')
    end
  end
  return table.concat(out, '\n')
end

-- about 11 rows of n: the ends and evenly between
local function some_rows(n)
  if n <= 12 then
    local all = {}
    for i = 1, n do all[i] = i end
    return all
  end
  local idx, last = {}, nil
  for k = 0, 10 do
    local i = 1 + math.floor((n - 1) * k / 10 + 0.5)
    if i ~= last then idx[#idx + 1] = i end
    last = i
  end
  return idx
end

local function maybe_plot(opts, spec)
  if not (opts.file or opts.terminal) then return end
  spec.file, spec.terminal = opts.file, opts.terminal
  spec.title = opts.title or spec.title
  spec.width, spec.height = opts.width, opts.height
  spec.yrange = opts.yrange or spec.yrange
  spec.logy = opts.logy
  spec.key = opts.key or spec.key
  plot.lines(spec)
end

---------------------------------------------------------------------------
-- curves over p_y (or over the logit margin)

local OVER = {
  -- x -> the logit of class 0, the others 0
  py = {label = 'p_y', range = {0.01, 0.99},
        check = function(lo, hi) return lo > 0 and hi < 1 end, hint = 'inside (0, 1)',
        logit = function(x, K) return math.log(x * (K - 1) / (1 - x)) end},
  margin = {label = 'z_y - z_j (the logit margin)', range = {-5, 10},
            check = function() return true end, hint = 'finite',
            logit = function(x) return x end},
}

local function grid(fn, opts)
  local over = opts.over or 'py'
  local o = OVER[over]
  if not o then fail(fn, "over must be 'py' or 'margin', got " .. tostring(over)) end
  local n = opts.points or 99
  if type(n) ~= 'number' or n % 1 ~= 0 or n < 2 or n > 100000 then
    fail(fn, 'points must be an integer in 2..100000, got ' .. tostring(n))
  end
  local r = opts.range or o.range
  if type(r) ~= 'table' or not finite(r[1]) or not finite(r[2]) or not (r[1] < r[2]) or not o.check(r[1], r[2]) then
    fail(fn, 'range must be {lo, hi} with lo < hi, ' .. o.hint .. ', for over = ' .. over .. ', got ' ..
             (type(r) == 'table' and '{' .. tostring(r[1]) .. ', ' .. tostring(r[2]) .. '}' or tostring(r)))
  end
  local xs = {}
  for i = 1, n do xs[i] = r[1] + (r[2] - r[1]) * (i - 1) / (n - 1) end
  return over, xs
end

-- (points x K logits: at most 2^24 of them, 64 MiB of float32)
local function check_K(fn, K, points)
  if type(K) ~= 'number' or K % 1 ~= 0 or K < 2 or K > 100000 then
    fail(fn, 'K (the number of classes) must be an integer in 2..100000, got ' .. tostring(K))
  end
  if K * points > 2 ^ 24 then
    fail(fn, string.format('points x K = %d x %d logits is more than 2^24: fewer points or classes', points, K))
  end
  return K
end

-- The (N, K) float32 logits of the grid, with labels 0 and a grad_output
-- of ones (so backward gives dL/dz itself).
local function grid_logits(over, xs, K)
  local col = {}
  for i, x in ipairs(xs) do col[i] = {OVER[over].logit(x, K)} end
  local z = T.zeros(#xs, K)
  z:narrow(2, 1, 1):copy(T.tensor(col))
  return z, T.zeros({#xs}, 'int32'), T.ones(#xs)
end

-- value, dL/dz_y and w of each spec at the grid's logits
local function compute(specs, over, xs, K)
  local z, y, ones = grid_logits(over, xs, K)
  local ce = loss.ce{reduction = 'none'}
  local ce_grad = ce:backward(z, y, ones):select(2, 1):totable()
  local z_y, p_y = z:select(2, 1):totable(), z:softmax():select(2, 1):totable()
  local entries = {}
  for i, s in ipairs(specs) do
    local crit = s:criterion()
    local value = crit:forward(z, y):totable()
    local grad = crit:backward(z, y, ones):select(2, 1):totable()
    local weight = {}
    for k = 1, #grad do weight[k] = grad[k] / ce_grad[k] end
    entries[i] = {label = s.label, spec = s, K = K, value = value, grad = grad, weight = weight, z_y = z_y, p_y = p_y}
  end
  return entries, {z_y = z_y, p_y = p_y}
end

-- what to plot: the entry's field, the axis label, where the key goes
local WHAT = {value = {'value', 'loss', 'top right'}, weight = {'weight', 'w = (dL/dz_y) / (dCE/dz_y)', 'top left'},
              grad = {'grad', 'dL/dz_y', 'bottom right'}}

local function what_of(fn, what)
  what = what or 'value'
  if not WHAT[what] then fail(fn, "what must be 'value', 'weight' or 'grad', got " .. tostring(what)) end
  return what
end

local Result = {}
Result.__index = Result
function Result:__tostring() return self.summary end

-- the compact table: x, then each entry's value and w
local function print_entries(title, xname, xs, entries)
  local h1, h2 = {''}, {xname}
  for _, e in ipairs(entries) do
    h1[#h1 + 1] = {e.label, span = 2}
    h2[#h2 + 1], h2[#h2 + 2] = 'value', 'w'
  end
  local rows = {h1, h2}
  for _, i in ipairs(some_rows(#xs)) do
    local r = {num(xs[i])}
    for _, e in ipairs(entries) do r[#r + 1], r[#r + 2] = num(e.value[i]), num(e.weight[i]) end
    rows[#rows + 1] = r
  end
  print(title)
  print(render(rows, 2))
end

local function series_of(entries, xs, what)
  local series = {}
  for i, e in ipairs(entries) do series[i] = {name = e.label, x = xs, y = e[what]} end
  return series
end

-- explore.curve{losses = {...}, over = 'py' | 'margin', K = 10, points = 99, range = {lo, hi},
--               what = 'value' | 'weight' | 'grad' (what to plot), file = 'x.png' | terminal = true,
--               title, yrange = {lo, hi}, logy, width, height, key, quiet}
-- Returns {over, K, x, z_y, p_y, losses = {entry, ..., [label] = entry}}, each entry
-- {label, spec, K, value, grad (dL/dz_y), weight (w), z_y, p_y}, lists over x (z_y: the
-- float32 logit of the label the kernels saw; p_y: its softmax, in float32).
function M.curve(opts)
  local fn = 'curve'
  opts = check_opts(fn, opts, known_opts({'losses', 'over', 'K', 'points', 'range', 'what'}))
  local specs = specs_of(fn, opts.losses or {'ce', 'nllr', 'crl', 'focal', 'ce{smoothing=0.1}'})
  local over, xs = grid(fn, opts)
  local K = check_K(fn, opts.K or 10, #xs)
  local what = what_of(fn, opts.what)
  local entries, at = compute(specs, over, xs, K)
  local res = setmetatable({over = over, K = K, x = xs, z_y = at.z_y, p_y = at.p_y, losses = {}}, Result)
  local labels = {}
  for i, e in ipairs(entries) do
    res.losses[i], res.losses[e.label] = e, e
    labels[i] = e.label
  end
  res.summary = string.format('crlab.explore.curve: %s over %s (%d points, K = %d); fields x, p_y, z_y, ' ..
                              'losses[i].value / .grad / .weight', table.concat(labels, ', '), over, #xs, K)
  if not opts.quiet then
    print_entries(string.format('loss value and w = (dL/dz_y)/(dCE/dz_y), K = %d', K),
                  over == 'py' and 'p_y' or 'margin', xs, entries)
  end
  maybe_plot(opts, {title = string.format('%s vs %s (K = %d)', WHAT[what][2], OVER[over].label, K),
                    xlabel = OVER[over].label, ylabel = WHAT[what][2], key = WHAT[what][3],
                    series = series_of(entries, xs, what)})
  return res
end

-- explore.sweep{loss = 'crl{beta=1}', param = 'alpha' | 'beta' | 'gamma' | 'smoothing' | 'eps' | 'K',
--               values = {...}, what = 'value' | 'weight' | 'grad', over, K, points, range, plot options}
-- One curve per value of the parameter. Returns {param, values, over, x, losses = {entry per value}}.
function M.sweep(opts)
  local fn = 'sweep'
  opts = check_opts(fn, opts, known_opts({'loss', 'param', 'values', 'over', 'K', 'points', 'range', 'what'}))
  if opts.loss == nil then fail(fn, "needs loss = a loss spec, e.g. 'crl'") end
  local base = M.spec(opts.loss, fn)
  local param = opts.param
  if type(param) ~= 'string' then fail(fn, "needs param = the name of the parameter to vary, e.g. 'alpha' or 'K'") end
  param = ALIASES[param] or param
  if param ~= 'K' and base.params[param] == nil then
    fail(fn, base.name .. " has no parameter '" .. opts.param .. "' (it takes " ..
             (#base.param_names > 0 and table.concat(base.param_names, ', ') .. ' or K' or 'only K') .. ')')
  end
  local values = opts.values
  if type(values) ~= 'table' or #values == 0 then fail(fn, 'values must be a non-empty list of numbers') end
  local over, xs = grid(fn, opts)
  local what = what_of(fn, opts.what)
  local K0 = check_K(fn, opts.K or 10, #xs)
  local res = setmetatable({param = param, values = values, over = over, x = xs, losses = {}}, Result)
  for i, v in ipairs(values) do
    if not finite(v) then fail(fn, 'values[' .. i .. '] must be a finite number, got ' .. tostring(v)) end
    local K, s = K0, base
    if param == 'K' then
      K = check_K(fn, v, #xs)
    else
      local t = {name = base.name}
      for k, pv in pairs(base.params) do t[k] = pv end
      t[param] = v
      s = M.spec(t, fn)
    end
    local e = compute({s}, over, xs, K)[1]
    e.label = param .. '=' .. string.format('%g', v)
    res.losses[i], res.losses[e.label] = e, e
  end
  local others = {}
  for _, k in ipairs(base.param_names) do
    if k ~= param then others[#others + 1] = k end
  end
  local name = label_of(base.name, others, base.params, base.defaults) .. ' over ' .. param
  res.summary = string.format('crlab.explore.sweep: %s, %s = %s (%d points each); fields x, losses[i].value / ' ..
                              '.grad / .weight', base.name, param, table.concat(values, ', '), #xs)
  if not opts.quiet then
    print_entries(string.format('%s: loss value and w = (dL/dz_y)/(dCE/dz_y)%s', name,
                                param == 'K' and '' or ', K = ' .. K0), over == 'py' and 'p_y' or 'margin', xs,
                  res.losses)
  end
  maybe_plot(opts, {title = string.format('%s: %s vs %s%s', name, WHAT[what][2], OVER[over].label,
                                          param == 'K' and '' or ' (K = ' .. K0 .. ')'),
                    xlabel = OVER[over].label, ylabel = WHAT[what][2], key = WHAT[what][3],
                    series = series_of(res.losses, xs, what)})
  return res
end

---------------------------------------------------------------------------
-- one logit vector

-- explore.logits(z, y[, losses[, opts]]): z a list of K numbers or a (K) / (1, K) tensor, y the
-- label (0-based). Returns {z, y, p, losses = {entry, ..., [label] = entry}}, each entry
-- {label, spec, value, grad (K numbers, dL/dz_j), weight (w at the label)}.
function M.logits(z, y, losses, opts)
  local fn = 'logits'
  opts = check_opts(fn, opts, set({'quiet'}))
  local row
  if T.isTensor(z) then
    local t = z:totable()
    if z:dim() == 2 and z:size(1) == 1 then row = t[1]
    elseif z:dim() == 1 then row = t
    else fail(fn, 'z must be a (K) or (1, K) tensor, got ' .. tostring(z:dim()) .. ' dimensions') end
  elseif type(z) == 'table' then
    row = z
  else
    fail(fn, 'z must be a list of K logits or a (K) tensor, got ' .. type(z))
  end
  local K = #row
  if K < 2 then fail(fn, 'z must hold at least 2 logits, got ' .. K) end
  for j = 1, K do
    if not finite(row[j]) then fail(fn, 'z[' .. j .. '] must be a finite number, got ' .. tostring(row[j])) end
  end
  if type(y) ~= 'number' or y % 1 ~= 0 or y < 0 or y >= K then
    fail(fn, 'y must be the label, an integer in 0..' .. (K - 1) .. ' (0-based, as in crlab.loss), got ' .. tostring(y))
  end
  local specs = specs_of(fn, losses or {'ce', 'nllr', 'crl', 'focal', 'ce{smoothing=0.1}'})
  local zt = T.tensor({row})
  local labels, one = T.tensor({y}, 'int32'), T.ones(1)
  local ce_grad = loss.ce{reduction = 'none'}:backward(zt, labels, one):totable()[1]
  local res = setmetatable({z = zt:totable()[1], y = y, p = zt:softmax():totable()[1], losses = {}}, Result)
  for i, s in ipairs(specs) do
    local crit = s:criterion()
    local e = {label = s.label, spec = s, value = crit:forward(zt, labels):totable()[1],
               grad = crit:backward(zt, labels, one):totable()[1]}
    e.weight = e.grad[y + 1] / ce_grad[y + 1]
    res.losses[i], res.losses[s.label] = e, e
  end
  res.summary = string.format('crlab.explore.logits: K = %d, y = %d; fields z, p, losses[i].value / .grad / .weight',
                              K, y)
  if not opts.quiet then
    local rows = {{'class', 'z', 'p'}}
    for _, s in ipairs(specs) do rows[1][#rows[1] + 1] = s.label end
    for j = 1, K do
      local r = {(j - 1 == y and '* ' or '  ') .. (j - 1), num(res.z[j]), num(res.p[j])}
      for _, e in ipairs(res.losses) do r[#r + 1] = num(e.grad[j]) end
      rows[#rows + 1] = r
    end
    local v, w = {'value', '', ''}, {'w at y', '', ''}
    for _, e in ipairs(res.losses) do v[#v + 1], w[#w + 1] = num(e.value), num(e.weight) end
    rows[#rows + 1], rows[#rows + 2] = v, w
    print(string.format('gradient dL/dz_j per class (label y = %d, marked *); then each loss value and ' ..
                        'w = (dL/dz_y)/(dCE/dz_y)', y))
    print(render(rows, 1))
  end
  return res
end

---------------------------------------------------------------------------
-- trained runs

local function read_metrics(fn, dir)
  if type(dir) ~= 'string' or dir == '' then fail(fn, 'a run folder is a path (a string), got ' .. type(dir)) end
  local path = dir:gsub('/+$', '') .. '/metrics.jsonl'
  local recs, bad = metrics.readRecords(path)
  if not recs then
    local d = io.open(dir, 'r')
    if not d then fail(fn, "there is no run folder '" .. dir .. "'") end
    d:close()
    fail(fn, "'" .. dir .. "' is not a run folder: it holds no metrics.jsonl (scripts/train.lua writes one)")
  end
  if #bad > 0 then
    fail(fn, path .. ' line ' .. bad[1].line .. ' is not a metrics record (' .. bare(bad[1].why) .. ')')
  end
  if #recs == 0 then fail(fn, path .. ' holds no epochs yet') end
  return recs, path
end

local function pick_epoch(fn, recs, path, epoch)
  if epoch == nil or epoch == 'last' then return recs[#recs] end
  if epoch == 'best' then return metrics.bestRecord(recs) or recs[#recs] end
  if type(epoch) ~= 'number' then fail(fn, "epoch must be a number, 'last' or 'best', got " .. tostring(epoch)) end
  for _, r in ipairs(recs) do
    if r.epoch == epoch then return r end
  end
  fail(fn, string.format('%s has no epoch %s (it holds epochs %d to %d)', path, tostring(epoch), recs[1].epoch,
                         recs[#recs].epoch))
end

local function need(fn, rec, path, field)
  local v = rec[field]
  if v == nil then
    fail(fn, string.format("%s: epoch %d has no %s (the run was written before the trainer recorded it; train " ..
                           'it again to get it)', path, rec.epoch, field))
  end
  return v
end

-- test_bins of a record -> crlab.metrics.binTable's {lo, hi, count, confidence, accuracy,
-- confidenceSum, correct} per bin
local function read_bins(fn, rec, path)
  local b = need(fn, rec, path, 'test_bins')
  local bad = string.format('%s: epoch %d: test_bins is not a list of [count, confidence_sum, correct] triples',
                            path, rec.epoch)
  if type(b) ~= 'table' or #b == 0 then fail(fn, bad) end
  for i, e in ipairs(b) do
    if type(e) ~= 'table' or #e ~= 3 or not finite(e[1]) or not finite(e[2]) or not finite(e[3]) or e[1] < 0 then
      fail(fn, bad .. ' (bin ' .. i .. ')')
    end
  end
  return metrics.binTable(b)
end

local function dirs_of(fn, dirs)
  if type(dirs) == 'string' then return {dirs} end
  if type(dirs) ~= 'table' or #dirs == 0 then
    fail(fn, 'expects a run folder or a list of run folders, got ' .. type(dirs))
  end
  return dirs
end

-- The loss a run trained with, from its checkpoint's options; nil when it
-- cannot be read.
local function run_loss(dir)
  local ok, meta = pcall(function() return require('crlab.checkpoint').metadata(dir .. '/checkpoint.safetensors') end)
  if not ok or type(meta) ~= 'table' or type(meta.options) ~= 'string' then return nil end
  local ok2, o = pcall(json.decode, meta.options)
  if not ok2 or type(o) ~= 'table' or type(o.loss) ~= 'string' then return nil end
  local ok3, base = pcall(loss.byName, o.loss)
  if not ok3 then return nil end
  local t = {name = o.loss}
  for _, k in ipairs(base.param_names) do t[k] = o[k] end
  local ok4, s = pcall(M.spec, t)
  return ok4 and s.label or nil
end

local function basename(dir) return (dir:gsub('/+$', ''):match('[^/]+$') or dir) end

-- {dir, label, loss, recs, path} per run. The label is the run's loss
-- when that tells the runs apart, else the folder's name (or opts.labels).
local function load_runs(fn, dirs, labels)
  dirs = dirs_of(fn, dirs)
  if labels ~= nil and (type(labels) ~= 'table' or #labels ~= #dirs) then
    fail(fn, 'labels must be a list of ' .. #dirs .. ' names, one per run')
  end
  local runs, count = {}, {}
  for i, d in ipairs(dirs) do
    local recs, path = read_metrics(fn, d)
    runs[i] = {dir = d, recs = recs, path = path, loss = run_loss(d)}
    if runs[i].loss then count[runs[i].loss] = (count[runs[i].loss] or 0) + 1 end
  end
  for i, r in ipairs(runs) do
    r.label = labels and tostring(labels[i]) or (r.loss and count[r.loss] == 1 and r.loss) or basename(r.dir)
  end
  return runs
end

local function describe(r, rec)
  return string.format('%s%s, epoch %d: test acc %s, ECE %s', r.dir, r.loss and ' (' .. r.loss .. ')' or '', rec.epoch,
                       type(rec.test_acc) == 'number' and string.format('%.2f%%', 100 * rec.test_acc) or '-',
                       num(rec.test_ece))
end

-- explore.reliability(run or {runs...}, {epoch = n | 'last' | 'best', merge = true, labels, file | terminal, ...})
-- The reliability diagram of each run's test pass at that epoch (mean accuracy against mean
-- confidence per confidence bin, with the diagonal of perfect calibration). merge = true sums
-- the bins of all the runs (seeds of one setting) into one curve.
-- Returns {runs = {{dir, label, loss, epoch, ece, acc, bins = {{lo, hi, count, confidence, accuracy, ...}}}}}.
function M.reliability(dirs, opts)
  local fn = 'reliability'
  opts = check_opts(fn, opts, known_opts({'epoch', 'merge', 'labels'}))
  local runs = load_runs(fn, dirs, opts.labels)
  local res = setmetatable({runs = {}}, Result)
  for i, r in ipairs(runs) do
    local rec = pick_epoch(fn, r.recs, r.path, opts.epoch)
    res.runs[i] = {dir = r.dir, label = r.label, loss = r.loss, epoch = rec.epoch, ece = rec.test_ece,
                   acc = rec.test_acc, bins = read_bins(fn, rec, r.path), describe = describe(r, rec)}
  end
  if opts.merge and #res.runs > 1 then
    local B = #res.runs[1].bins
    local sum = {}
    for b = 1, B do sum[b] = {0, 0, 0} end
    for _, r in ipairs(res.runs) do
      if #r.bins ~= B then fail(fn, r.dir .. ' has ' .. #r.bins .. ' confidence bins, ' .. res.runs[1].dir ..
                                    ' has ' .. B .. ': they cannot be summed') end
      for b, e in ipairs(r.bins) do
        sum[b][1], sum[b][2], sum[b][3] = sum[b][1] + e.count, sum[b][2] + e.confidenceSum, sum[b][3] + e.correct
      end
    end
    local merged = read_bins(fn, {epoch = res.runs[1].epoch, test_bins = sum}, 'the sum')
    res.runs = {{dir = 'sum of ' .. #res.runs .. ' runs', label = opts.labels and opts.labels[1] or
                 string.format('sum of %d runs', #res.runs), bins = merged,
                 describe = 'the sum of ' .. #res.runs .. ' runs: ' .. table.concat(dirs_of(fn, dirs), ', ')}}
  end
  res.summary = string.format('crlab.explore.reliability: %d run(s); fields runs[i].bins[b].confidence / ' ..
                              '.accuracy / .count', #res.runs)
  local series = {{name = 'perfect calibration', x = {0, 1}, y = {0, 1}}}
  for _, r in ipairs(res.runs) do
    local rows, xs, ys = {{'confidence bin', 'count', 'confidence', 'accuracy', 'acc - conf'}}, {}, {}
    for _, e in ipairs(r.bins) do
      if e.count > 0 then
        rows[#rows + 1] = {string.format('%.3f-%.3f', e.lo, e.hi), string.format('%d', e.count), num(e.confidence),
                           num(e.accuracy), num(e.accuracy - e.confidence)}
        xs[#xs + 1], ys[#ys + 1] = e.confidence, e.accuracy
      end
    end
    if not opts.quiet then
      print(r.describe)
      print(render(rows, 1))
    end
    series[#series + 1] = {name = r.label, x = xs, y = ys, style = 'linespoints'}
  end
  local spec = {title = 'Reliability: accuracy vs confidence per bin', xlabel = 'mean confidence (max softmax)',
                ylabel = 'accuracy', series = series, xrange = {0, 1}, yrange = {0, 1}, key = 'top left'}
  maybe_plot(opts, spec)
  return res
end

-- explore.confidence(run or {runs...}, {epoch, fraction = true, labels, file | terminal, ...})
-- The confidence histogram (test examples per confidence bin) of each run at that epoch;
-- fraction = true plots the share of the test examples instead of the count.
-- Returns {runs = {{dir, label, loss, epoch, counts = {...}, fractions = {...}, bins}}}.
function M.confidence(dirs, opts)
  local fn = 'confidence'
  opts = check_opts(fn, opts, known_opts({'epoch', 'fraction', 'labels'}))
  local runs = load_runs(fn, dirs, opts.labels)
  local res = setmetatable({runs = {}}, Result)
  local head, series = {'confidence bin'}, {}
  for i, r in ipairs(runs) do
    local rec = pick_epoch(fn, r.recs, r.path, opts.epoch)
    local bins = read_bins(fn, rec, r.path)
    local counts, fractions, total = {}, {}, 0
    for b, e in ipairs(bins) do counts[b], total = e.count, total + e.count end
    for b = 1, #counts do fractions[b] = counts[b] / total end
    res.runs[i] = {dir = r.dir, label = r.label, loss = r.loss, epoch = rec.epoch, bins = bins, counts = counts,
                   fractions = fractions}
    head[#head + 1] = r.label
    local xs = {}
    for b, e in ipairs(bins) do xs[b] = (e.lo + e.hi) / 2 end
    series[i] = {name = r.label, x = xs, y = opts.fraction and fractions or counts, style = 'histeps'}
    if not opts.quiet then print(describe(r, rec)) end
  end
  if not opts.quiet then
    local rows, B = {head}, #res.runs[1].bins
    for b = 1, B do
      local e = res.runs[1].bins[b]
      local r = {string.format('%.3f-%.3f', e.lo, e.hi)}
      for _, run in ipairs(res.runs) do
        local c = run.counts[b]
        r[#r + 1] = c == nil and '-' or opts.fraction and string.format('%.4f', run.fractions[b]) or
                    string.format('%d', c)
      end
      rows[#rows + 1] = r
    end
    print(render(rows, 1))
  end
  res.summary = string.format('crlab.explore.confidence: %d run(s); fields runs[i].counts / .fractions', #res.runs)
  maybe_plot(opts, {title = 'Confidence histogram (test set)', xlabel = 'confidence (max softmax)',
                    ylabel = opts.fraction and 'fraction of test examples' or 'test examples', series = series,
                    xrange = {0, 1}, key = 'top left'})
  return res
end

-- explore.logitNorm(run or {runs...}, {labels, file | terminal, logy, ...})
-- The mean L2 norm of the test logits by epoch, one line per run.
-- Returns {runs = {{dir, label, loss, epochs = {...}, norm = {...}}}}.
function M.logitNorm(dirs, opts)
  local fn = 'logitNorm'
  opts = check_opts(fn, opts, known_opts({'labels'}))
  local runs = load_runs(fn, dirs, opts.labels)
  local res = setmetatable({runs = {}}, Result)
  local series, byEpoch, epochs = {}, {}, {}
  local head = {'epoch'}
  for i, r in ipairs(runs) do
    local ep, norm = {}, {}
    for j, rec in ipairs(r.recs) do
      local v = need(fn, rec, r.path, 'test_logit_norm')
      if type(v) ~= 'number' then
        fail(fn, string.format('%s: epoch %d: test_logit_norm is not a number', r.path, rec.epoch))
      end
      ep[j], norm[j] = rec.epoch, v
      if not byEpoch[rec.epoch] then
        byEpoch[rec.epoch] = {}
        epochs[#epochs + 1] = rec.epoch
      end
      byEpoch[rec.epoch][i] = v
    end
    res.runs[i] = {dir = r.dir, label = r.label, loss = r.loss, epochs = ep, norm = norm}
    series[i] = {name = r.label, x = ep, y = norm, style = 'linespoints'}
    head[#head + 1] = r.label
  end
  table.sort(epochs)
  if not opts.quiet then
    local rows = {head}
    for _, e in ipairs(epochs) do
      local row = {tostring(e)}
      for i = 1, #runs do row[#row + 1] = num(byEpoch[e][i]) end
      rows[#rows + 1] = row
    end
    print('mean L2 norm of the test logits by epoch')
    print(render(rows, 1))
  end
  res.summary = string.format('crlab.explore.logitNorm: %d run(s); fields runs[i].epochs / .norm', #res.runs)
  maybe_plot(opts, {title = 'Mean L2 norm of the test logits by epoch', xlabel = 'epoch', ylabel = '||z||',
                    series = series, key = 'top left', xtics = epochs[#epochs] - epochs[1] <= 20 and 1 or nil})
  return res
end

return M
