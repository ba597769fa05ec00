-- crlab.train: the training loop behind scripts/train.lua.
--
-- One run: seed, data, model, loss, optimiser and schedule from an options
-- table; per epoch a training pass (shuffled, augmented) and a test pass
-- (top-1, top-5 where K > 5, expected calibration error over 15 bins);
-- metrics appended to metrics.jsonl and metrics.csv; a checkpoint written
-- atomically after every epoch (weights, BN statistics, optimiser state,
-- epoch, generator state, options) and the best model by test accuracy
-- kept apart. resume = true continues from the checkpoint to the same
-- result as an uninterrupted run.
--
-- device = 'cuda' trains on the GPU: the model (parameter and gradient
-- slabs, running statistics) moves there before the optimiser is made, so
-- its state lives there too; each batch is copied into device buffers that
-- are reused; the loss and the epoch's sums stay on the device and are
-- read back only for a progress line and at the end of the epoch.
-- cuda_graph = true (with device = 'cuda') captures the step's forward,
-- loss, sums and backward in a CUDA graph after two eager steps of each
-- epoch and replays it for every batch of that size (M.stepper); the
-- optimiser step and clipping stay eager.
-- Checkpoints hold host data either way and load on a CPU-only machine.
local crlab = require 'crlab'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local models = require 'crlab.models'
local optim = require 'crlab.optim'
local data = require 'crlab.data'
local json = require 'crlab.json'
local ckpt = require 'crlab.checkpoint'
local metrics = require 'crlab.metrics'
local Tr = require 'crlab.transforms'
local ffi = require 'ffi'
local C = core.C

local M = {}

M.FORMAT = 'crlab-checkpoint-1'

-- Every option, its default and its help; scripts/train.lua parses these.
-- resume = how the option may differ when a run resumes: absent, it
-- defines the run and must equal the saved value; 'free', it may change
-- (epochs to extend, where and how fast the run computes); 'invocation',
-- it belongs to one invocation. Options not given on the command line of a
-- resume take the saved values, except the 'invocation' ones. A number
-- must be finite, and an integer where int = true, >= min, > above, < below
-- (M.check_options); the losses' parameters and the Adience fold are the
-- loss's and the dataset's to check.
M.options = {
  {'experiment', '', 'a Lua file returning the run\'s fields: option values, or Lua objects for model, transform, ' ..
   'schedule, loss, optimizer, dataset, onStep, onEpoch (options given here override its fields)',
   resume = 'free'}, -- the file may move: its CRC-32 is what a resume checks
  {'name', '', 'the experiment\'s name: the model\'s name in checkpoints when the model is a Lua object, and the ' ..
   'default run folder runs/<name>-<loss>-s<seed>'},
  {'dataset', 'fashion-mnist', 'fashion-mnist | mnist | cifar10 | cifar100 | svhn | cub200 | cars | adience | imagenet | folder'},
  {'data', '', 'folder of the dataset files (see data/README.md; Fashion-MNIST and MNIST default to Debian\'s)',
   resume = 'free'},
  {'coarse', false, 'cifar100: the 20 coarse labels'},
  {'extra', false, 'svhn: add the extra split to training'},
  {'bbox', false, 'cub200, cars: crop each image to its bounding box'},
  {'fold', 0, 'adience: the test fold (0-4)'},
  {'image-size', 224, 'cub200, cars, adience, imagenet, folder: training crop size', int = true, min = 1},
  {'model', 'cnn', 'cnn | resnet20..110 | preresnet20..110 | wrn-D-K | densenet-bc-L-K | resnet18/34/50'},
  {'loss', 'crl', 'ce | nllr | crl | focal'},
  {'alpha', 1.5, 'CRL alpha'},
  {'beta', 1, 'CRL beta'},
  {'gamma', 2, 'focal gamma'},
  {'smoothing', 0, 'CE label smoothing'},
  {'epochs', 10, 'epochs to train', resume = 'free', int = true, min = 1},
  {'batch', 128, 'batch size', int = true, min = 1},
  {'optimizer', 'sgd', 'sgd | adam | adamw'},
  {'lr', 0.1, 'base learning rate', above = 0},
  {'momentum', 0.9, 'SGD momentum', min = 0, below = 1},
  {'nesterov', false, 'Nesterov momentum'},
  {'weight-decay', 5e-4, 'weight decay', min = 0},
  {'no-decay-bn-bias', false, 'no weight decay on batch-norm and bias parameters'},
  {'schedule', 'cosine', 'cosine | multistep | constant'},
  {'milestones', '', 'multistep: comma-separated epochs, e.g. 100,150'},
  {'lr-gamma', 0.1, 'multistep: factor at each milestone', above = 0},
  {'warmup', 0, 'epochs of linear learning-rate warm-up', min = 0},
  {'clip', 0, 'clip the gradient norm to this (0: off)', min = 0},
  {'crop', -1, 'random crop after padding by this many pixels (-1: the dataset recipe, 0: off)', int = true,
   min = -1},
  {'flip', false, 'random horizontal flips (CIFAR recipes flip anyway)'},
  {'workers', 2, 'loader threads (at least 1: the loader reads in threads of its own)', resume = 'free', int = true,
   min = 1},
  {'skip-bad', false, 'skip unreadable images (and count them) instead of stopping', resume = 'free'},
  {'seed', 1, 'seed of the one generator (weights, order, augmentation)', int = true, min = 0},
  {'device', 'cpu', 'cpu | cuda: where the model trains', resume = 'free'},
  {'cuda-graph', false, 'cuda: replay the forward and backward pass as one CUDA graph (no dropout)',
   resume = 'free'},
  {'precision', 'fp32', 'fp32 | bf16: bf16 runs convolutions and matrix products in bfloat16 on tensor cores '
                         .. '(float32 weights, activations and optimiser; --device cuda only)', resume = 'free'},
  {'threads', 0, 'CPU threads (0: all cores)', resume = 'free', int = true, min = 0},
  {'train-limit', 0, 'use only the first N training images (0: all)', int = true, min = 0},
  {'test-limit', 0, 'use only the first N test images (0: all)', int = true, min = 0},
  {'eval-batch', 500, 'batch size of the test pass', resume = 'free', int = true, min = 1},
  {'out', '', 'run folder (default runs/<dataset>-<model>-<loss>-s<seed>)', resume = 'invocation'},
  {'resume', false, 'continue the run in --out from its checkpoint', resume = 'invocation'},
  {'overwrite', false, 'start afresh in an --out that already holds a run (its checkpoint, best model and metrics are ' ..
   'replaced); without it such a folder is refused', resume = 'invocation'},
  {'override', false, 'with --resume: accept options that differ from the saved run (each change is printed and ' ..
   'recorded in metrics.jsonl as "override")', resume = 'invocation'},
  {'stop-after', 0, 'stop after this many epochs in this invocation (for time-limited jobs; resume later)',
   resume = 'invocation', int = true, min = 0},
  {'quiet', false, 'no progress output', resume = 'free'},
}

function M.defaults()
  local o = {}
  for _, d in ipairs(M.options) do o[d[1]] = d[2] end
  return o
end

-- The options each parsed table was given explicitly (option -> true),
-- which a resume compares with the saved run; a table that parse did not
-- make counts as giving every option it holds.
local given_options = setmetatable({}, {__mode = 'k'})

-- Parses {'--model', 'resnet20', '--flip', ...} into an options table.
function M.parse(args)
  local o, known, given = M.defaults(), {}, {}
  given_options[o] = given
  for _, d in ipairs(M.options) do known[d[1]] = d end
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, inline = a:match('^%-%-([%w%-]+)=(.*)$')
    key = key or a:match('^%-%-([%w%-]+)$')
    if not key then error("train: unexpected argument '" .. a .. "' (options start with --)", 0) end
    local d = known[key]
    if key == 'help' then return nil end
    if not d then error("train: unknown option '--" .. key .. "' (see --help)", 0) end
    given[key] = true
    if type(d[2]) == 'boolean' then
      o[key] = inline == nil or inline == 'true' or inline == '1'
      i = i + 1
    else
      local v = inline or args[i + 1]
      if v == nil then error('train: option --' .. key .. ' needs a value', 0) end
      if not inline and v:match('^%-%-') then
        error('train: option --' .. key .. " needs a value, got the option '" .. v .. "' (write --" .. key ..
              '=VALUE for a value that starts with --)', 0)
      end
      if type(d[2]) == 'number' then
        local n = tonumber(v)
        if not n then error('train: option --' .. key .. " expects a number, got '" .. v .. "'", 0) end
        o[key] = n
      else
        o[key] = v
      end
      i = i + (inline and 1 or 2)
    end
  end
  return M.check_options(o)
end

-- Fails naming the first option whose value is out of its range (see
-- M.options); returns o.
function M.check_options(o)
  for _, d in ipairs(M.options) do
    local k, v = d[1], o[d[1]]
    if type(d[2]) == 'number' and v ~= nil then
      local want = d.min and '>= ' .. d.min or d.above and '> ' .. d.above or 'finite'
      if d.below then want = 'in [' .. d.min .. ', ' .. d.below .. ')' end
      if d.int then want = 'an integer ' .. want end
      if type(v) ~= 'number' or v ~= v or v == math.huge or v == -math.huge or (d.int and v % 1 ~= 0) or
         (d.min and v < d.min) or (d.above and v <= d.above) or (d.below and v >= d.below) then
        error('train: option --' .. k .. ' must be ' .. want .. ", got '" .. tostring(v) .. "'", 0)
      end
    end
  end
  if o.override and not o.resume then
    error('train: --override applies only with --resume (it accepts changed options of a resumed run; without ' ..
          '--resume the run would start afresh over the one in --out)', 0)
  end
  for m in tostring(o.milestones or ''):gmatch('[^,%s]+') do
    local n = tonumber(m)
    if not n or n ~= n or n < 0 or n == math.huge then
      error("train: option --milestones must be comma-separated epochs, got '" .. tostring(o.milestones) ..
            "' (e.g. 100,150)", 0)
    end
  end
  return o
end

function M.usage()
  local lines = {'usage: crlab scripts/train.lua [--option value ...]'}
  for _, d in ipairs(M.options) do
    lines[#lines + 1] = string.format('  --%-18s %s (default: %s)', d[1], d[3], tostring(d[2]))
  end
  return table.concat(lines, '\n')
end

---------------------------------------------------------------------------
-- experiments: a run's fields as Lua objects
--
-- crlab.train.run takes the options table (M.parse's, or one written in
-- Lua) and, in place of a name, a Lua object for these fields:
--   model      a module, or a function(info) -> module, info = {channels,
--              classes, size, dataset}; a function is called after the
--              generator is seeded, so --seed fixes its initial weights
--   transform  {train = pipeline, test = pipeline} (crlab.transforms.compose
--              results or lists of transforms); replaces the dataset's recipe
--   schedule   a function(e) -> learning rate, e the fractional epoch from 0
--              (--lr and --warmup then do not apply)
--   loss       a criterion: crlab.loss objects become the options they stand
--              for (loss, alpha, beta, gamma, smoothing); any other object
--              with forwardTensor(out, y) -> value, per-example losses and
--              backward(out, y) is used as it is
--   optimizer  a table of options ({'adamw', weightDecay = 0.05}) or a
--              function(params, grads, ranges) -> an optimiser with step(lr),
--              state() and loadState(tensors, meta)
--   dataset    a name with options ({'cifar100', coarse = true}) or a table
--              {train = split, test = split, classes = names or K,
--              channels = C, size = S[, name]} (crlab.data.split)
--   onStep     function(info): info = {epoch, batch, batches, step, lr,
--              stats = function() -> the epoch's running summary (a read-back)}
--   onEpoch    function(record, info): the epoch's metrics record after its
--              checkpoint; returning false stops the run there (early stopping)
-- An experiment file (--experiment FILE) returns such a table; its fields
-- may be written weight_decay or weightDecay for --weight-decay. Options
-- given on the command line override the file's fields. A run records its
-- Lua objects by a name ('lua' or --name) in the saved options, and an
-- experiment file by a CRC-32 of its text, which a resume checks.

local OBJECT_FIELDS = {model = 'a module or a function(info) -> module',
                       transform = 'a table {train = pipeline, test = pipeline}',
                       schedule = 'a function(epoch) -> learning rate',
                       loss = 'a criterion (forwardTensor, backward)',
                       optimizer = 'a table of options or a function(params, grads, ranges) -> optimiser',
                       dataset = 'a table {train = split, test = split, classes, channels, size}',
                       onStep = 'a function(info)', onEpoch = 'a function(record, info)'}

-- weight_decay, weightDecay -> weight-decay
local function canon(k)
  return (k:gsub('(%l)(%u)', function(a, b) return a .. '-' .. b:lower() end):gsub('_', '-'))
end

local function is_plain(v)
  local t = type(v)
  return t == 'string' or t == 'number' or t == 'boolean'
end

local known_options
local function option_entry(key)
  if not known_options then
    known_options = {}
    for _, d in ipairs(M.options) do known_options[d[1]] = d end
  end
  return known_options[key]
end

-- A plain option value into o, checked against the option's type; seen
-- (key -> field) refuses one option given twice in one table, under two
-- spellings or by an object and a field, which pairs() would settle in
-- no stated order.
local function set_option(o, given, key, v, where, field, seen)
  local d = option_entry(key)
  if not d then
    error(string.format("train: %s: unknown field '%s' (an option of crlab.train.options, or %s)", where,
                        tostring(field), 'model, transform, schedule, loss, optimizer, dataset, onStep, onEpoch'), 0)
  end
  if type(v) ~= type(d[2]) then
    error(string.format('train: %s: %s must be a %s, got %s%s', where, field, type(d[2]), type(v),
                        is_plain(v) and " '" .. tostring(v) .. "'" or ''), 0)
  end
  if seen[key] then
    error(string.format('train: %s: %s is given twice (as %s and as %s)', where, key, seen[key], tostring(field)), 0)
  end
  seen[key] = tostring(field)
  o[key], given[key] = v, true
end

local function callable(v)
  if type(v) == 'function' then return true end
  local mt = getmetatable(v)
  return type(mt) == 'table' and mt.__call ~= nil
end

-- {'name', option = value, ...} (or name = 'name') for the option k and
-- the options that go with it; false when a key is neither.
local function named_options(o, given, k, v, where, seen)
  for nk, nv in pairs(v) do
    if nk == 1 or nk == 'name' then set_option(o, given, k, nv, where, k .. '.' .. nk, seen)
    elseif type(nk) == 'string' then set_option(o, given, canon(nk), nv, where, k .. '.' .. nk, seen)
    else return false end
  end
  return true
end

-- One object field of an experiment into x (and its stand-in into o).
local function set_object(o, x, given, k, v, where, seen)
  local bad = function()
    error(string.format('train: %s: %s must be %s%s, got %s', where, k, option_entry(k) and 'a name or ' or '',
                        OBJECT_FIELDS[k], type(v)), 0)
  end
  if k == 'loss' then
    if crlab.loss.isCriterion(v) then -- the options it stands for
      set_option(o, given, 'loss', v.name, where, k, seen)
      for _, p in ipairs(v.param_names) do set_option(o, given, p, v[p], where, k .. '.' .. p, seen) end
      x.loss = nil
      return
    end
    if type(v) ~= 'table' or type(v.forwardTensor) ~= 'function' or type(v.backward) ~= 'function' then bad() end
    o.loss = 'lua'
  elseif k == 'optimizer' then
    if type(v) == 'table' and not callable(v) then
      if not named_options(o, given, k, v, where, seen) then bad() end
      x.optimizer = nil
      return
    end
    if not callable(v) then bad() end
    o.optimizer = 'lua'
  elseif k == 'dataset' then
    if type(v) ~= 'table' then bad() end
    if v.train == nil then -- a name with options
      if not named_options(o, given, k, v, where, seen) then bad() end
      x.dataset = nil
      return
    end
    for _, s in ipairs({'train', 'test'}) do
      local sp = v[s]
      if type(sp) ~= 'table' or type(sp.size) ~= 'function' or type(sp.get) ~= 'function' then
        error(string.format('train: %s: dataset.%s must be a split (crlab.data.split(images, labels)), got %s',
                            where, s, type(sp)), 0)
      end
    end
    local K = type(v.classes) == 'table' and #v.classes or v.classes
    if type(K) ~= 'number' or K < 1 or K % 1 ~= 0 then
      error(string.format('train: %s: dataset.classes must be the class names or their number, got %s', where,
                          tostring(v.classes)), 0)
    end
    for _, f in ipairs({'channels', 'size'}) do
      if type(v[f]) ~= 'number' or v[f] < 1 or v[f] % 1 ~= 0 then
        error(string.format('train: %s: dataset.%s must be a positive integer, got %s', where, f, tostring(v[f])), 0)
      end
    end
    o.dataset = type(v.name) == 'string' and v.name or 'lua'
  elseif k == 'transform' then
    if type(v) ~= 'table' then bad() end
    local t = {}
    for tk, tv in pairs(v) do
      if tk ~= 'train' and tk ~= 'test' then
        error(string.format("train: %s: transform has the field '%s'; it takes train and test", where, tostring(tk)), 0)
      end
      if not Tr.isPipeline(tv) then
        if type(tv) ~= 'table' then bad() end
        local okc, p = pcall(Tr.compose, tv)
        if not okc then error(string.format('train: %s: transform.%s: %s', where, tk, tostring(p)), 0) end
        tv = p
      end
      t[tk] = tv
    end
    v = t
    o.transform = string.format('train %s, test %s', tostring(t.train or 'the recipe'), tostring(t.test or 'the recipe'))
  elseif k == 'model' then
    if not callable(v) and not (type(v) == 'table' and type(v.forward) == 'function' and
                                type(v.getParameters) == 'function') then bad() end
    o.model = 'lua' -- named after the fields are read (--name)
  else -- schedule, onStep, onEpoch
    if not callable(v) then bad() end
    if k == 'schedule' then o.schedule = 'lua' end
  end
  x[k] = v
  given[k] = true
end

local function apply_fields(o, x, given, t, where)
  local seen = {}
  for k, v in pairs(t) do
    if type(k) ~= 'string' then
      error(string.format('train: %s: fields are named, got the field [%s]', where, tostring(k)), 0)
    end
    if OBJECT_FIELDS[k] and not (type(v) == 'string' and option_entry(k)) then
      set_object(o, x, given, k, v, where, seen)
    else
      local key = canon(k)
      set_option(o, given, key, v, where, k, seen)
      if OBJECT_FIELDS[key] then x[key] = nil end -- a name replaces an object given before
    end
  end
end

-- The table an experiment file returns; errors name the file.
function M.loadExperiment(path)
  local fn, err = loadfile(path)
  if not fn then error('train: --experiment: ' .. tostring(err), 0) end
  -- crlab is a global there, as under the crlab command; globals the file
  -- sets stay in its own table
  setfenv(fn, setmetatable({crlab = crlab}, {__index = _G}))
  local ok, t = pcall(fn)
  if not ok then error('train: --experiment ' .. path .. ' failed: ' .. tostring(t), 0) end
  if type(t) ~= 'table' then
    error('train: --experiment ' .. path .. ' must return a table of the run\'s fields, it returned ' .. type(t), 0)
  end
  return t
end

-- The CRC-32 of a file's bytes as 8 hex digits, or nil when it cannot be read.
local function file_crc(path)
  local text = core.readFile(path)
  if not text then return nil end
  local c = ffi.new('uint32_t[1]')
  core.check(C.crl_crc32(c, text, #text))
  return string.format('%08x', c[0])
end

local resolved = setmetatable({}, {__mode = 'k'})

-- The plain options o and the objects x of a run: defaults, then the
-- experiment file's fields, then the fields of spec (of a parsed command
-- line, those given there or changed since). Tables already resolved are
-- returned as they are.
function M.resolve(spec)
  if resolved[spec] then return spec, resolved[spec] end
  if type(spec) ~= 'table' then error('train: run takes a table of options, got ' .. type(spec), 0) end
  local spec_given = given_options[spec]
  local o, x, given = M.defaults(), {}, {}
  local exp = spec.experiment
  if exp ~= nil and exp ~= '' then
    if type(exp) ~= 'string' then error('train: experiment must be the path of a Lua file, got ' .. type(exp), 0) end
    apply_fields(o, x, given, M.loadExperiment(exp), exp)
    o.experiment, given.experiment = exp, true
    o['experiment-crc'] = file_crc(exp)
  end
  -- of a parsed command line, the options given there and any changed
  -- since (a script may set fields of parse's table)
  local defaults, fields = M.defaults(), {}
  for k, v in pairs(spec) do
    if k ~= 'experiment' and (spec_given == nil or spec_given[k] or v ~= defaults[k]) then fields[k] = v end
  end
  apply_fields(o, x, given, fields, spec_given and 'command line' or 'crlab.train.run')
  if x.model then o.model = o.name ~= '' and o.name or 'lua' end
  given_options[o], resolved[o] = given, x
  return o, x
end

-- Fails at once, naming the reason, when o.device cannot be used here.
function M.check_device(o)
  local dev = o.device or 'cpu'
  if dev ~= 'cpu' and dev ~= 'cuda' then
    error("train: unknown device '" .. tostring(dev) .. "' (cpu, cuda)", 0)
  end
  local prec = o.precision or 'fp32'
  if prec ~= 'fp32' and prec ~= 'bf16' then
    error("train: unknown precision '" .. tostring(prec) .. "' (fp32, bf16)", 0)
  end
  if prec == 'bf16' and dev ~= 'cuda' then
    error('train: --precision bf16 needs --device cuda (the CPU trains in fp32)', 0)
  end
  if dev == 'cuda' and not crlab.cuda.available() then
    local _, why = pcall(function() return crlab.zeros(1):cuda() end)
    error('train: --device cuda, but no CUDA device can be used here: ' ..
          tostring(why):gsub('^[%w_]+: ', '') .. ' (use --device cpu)', 0)
  end
  if o['cuda-graph'] and dev ~= 'cuda' then
    error('train: --cuda-graph needs --device cuda (a CUDA graph replays GPU work)', 0)
  end
  return dev
end

-- A function that copies a host tensor into a device buffer kept under a
-- key, resized as needed (the last batch of an epoch may be smaller), so
-- that a training step allocates no device memory once warmed up. On the
-- CPU it returns the tensor itself, unless fixed is true: then it copies
-- into host buffers kept likewise (a graph's stand-in reads fixed buffers).
function M.uploader(device, fixed)
  if device ~= 'cuda' and not fixed then return function(_, t) return t end end
  local dev = device == 'cuda' and C.CRL_CUDA or C.CRL_CPU
  local bufs = {}
  return function(key, t)
    local b = bufs[key]
    if b == nil or b.dtype ~= t.dtype then
      b = T.new(t.dtype, dev, {0})
      bufs[key] = b
    end
    core.check(C.crl_tensor_resize_as(b, t))
    return b:copy(t)
  end
end

-- The part of a training step before the optimiser: forward, the loss,
-- the epoch's sums (stats), zeroed gradients, backward; s.step(xh, yh)
-- takes a host batch. With graph = true it runs eagerly for s.warmup (2)
-- steps of one batch size (so that every buffer, scratch block and cuDNN
-- choice, benchmark timing included, exists), then captures the step in a
-- graph (crlab.cuda.graph: on 'cuda' a CUDA graph, on 'cpu' its stand-in)
-- that reads the batch from fixed buffers, and replays it for each batch
-- of that size; a batch of another size (an epoch's last) runs eagerly.
-- The optimiser stays out of the graph: its learning rate changes every
-- step and would be fixed in it. s.reset() frees the graph; call it when
-- the model's buffers may be replaced (evaluation with a larger batch
-- grows them), and the next steps warm up and capture again.
function M.stepper(model, crit, grads, stats, device, graph)
  local up = M.uploader(device, graph)
  local function eager(x, y)
    local out = model:forward(x)
    local _, per = crit:forwardTensor(out, y)
    stats:add(out, y, per)
    grads:zero()
    model:backward(x, crit:backward(out, y))
  end
  local s = {warmup = 2, warm = 0, captures = 0, replays = 0}
  function s.step(xh, yh)
    local x, y = up('x', xh), up('y', yh)
    if not graph then return eager(x, y) end
    local n = xh:size(1)
    if s.g == nil then
      if n ~= s.n then s.n, s.warm = n, 0 end
      if s.warm < s.warmup then
        s.warm = s.warm + 1
        return eager(x, y)
      end
      local ok, g = pcall(crlab.cuda.graph, function() eager(x, y) end, device)
      if not ok then
        error('train: --cuda-graph: the training step could not be captured: ' .. tostring(g) ..
              ' (train without --cuda-graph)', 0)
      end
      s.g, s.captures = g, s.captures + 1
    end
    if n ~= s.n then return eager(x, y) end
    s.g:replay()
    s.replays = s.replays + 1
  end
  function s.reset()
    if s.g then s.g:free() end
    s.g, s.n, s.warm = nil, nil, 0
  end
  return s
end

-- The first Dropout with p > 0 in the model, or nil.
local function find_dropout(m)
  if m.__typename == 'nn.Dropout' and m.p > 0 then return m end
  for _, c in ipairs(m:children()) do
    local d = find_dropout(c)
    if d then return d end
  end
end

-- Fails when a model cannot train from a replayed graph: dropout draws its
-- mask from the generator's offset, which advances on the host, so every
-- replay would reuse the mask of the capture.
function M.check_graph(model, name)
  local drop = find_dropout(model)
  if drop then
    error(string.format("train: --cuda-graph cannot train model '%s': it has dropout (p = %g), whose masks come " ..
                        "from the generator's offset, which advances on the host, so every replay of the graph " ..
                        "would reuse one mask (train without --cuda-graph)", name, drop.p), 0)
  end
end

local function show(k, v)
  if type(v) == 'boolean' then return '--' .. k .. '=' .. tostring(v) end
  if type(v) == 'string' and (v == '' or v:find('[%s\']')) then v = "'" .. v .. "'" end
  return '--' .. k .. ' ' .. tostring(v)
end

-- The options of a resumed run from o and saved (the checkpoint's): an
-- option o was not given takes the saved value (its default when the
-- checkpoint predates it), unless it belongs to the invocation; one given
-- that defines the run must equal the saved value. Fails naming every
-- difference, unless o.override: then the given values win and the second
-- result lists the changes, option -> {saved, new}.
function M.resume_options(o, saved, path)
  local given = given_options[o]
  local r, diffs, changes = {}, {}, {}
  for _, d in ipairs(M.options) do
    local k, sv = d[1], saved[d[1]]
    if sv == nil then sv = d[2] end
    local explicit
    if given then explicit = given[k] == true else explicit = o[k] ~= nil end
    if d.resume == 'invocation' or (explicit and d.resume == 'free') then
      r[k] = o[k]
    else
      r[k] = sv
      -- compared as recorded (the checkpoint holds the options as JSON)
      if explicit and json.encode(o[k]) ~= json.encode(sv) then
        diffs[#diffs + 1] = show(k, o[k]) .. " differs from the saved run's " .. tostring(sv)
        changes[k] = {sv, o[k]}
        if o.override then r[k] = o[k] end
      end
    end
  end
  if #diffs > 0 and not o.override then
    error(string.format('train: --resume: %s (%s): the options that define a run cannot change when it ' ..
                        'resumes; leave them out to keep the saved values, start another run with another --out, ' ..
                        'or add --override to change them (recorded in metrics.jsonl)',
                        table.concat(diffs, '; '), path), 0)
  end
  return r, changes
end

local function run_dir(o)
  if o.out ~= '' then return o.out end
  if o.name ~= '' then return string.format('runs/%s-%s-s%d', o.name, o.loss, o.seed) end
  return string.format('runs/%s-%s-%s-s%d', o.dataset, o.model, o.loss, o.seed)
end

local function mkdir_p(dir)
  local ok, why = core.mkdirs(dir)
  if not ok then error('train: ' .. why, 0) end
end

local function make_loss(o, reduction)
  local known = {ce = {smoothing = o.smoothing}, nllr = {}, crl = {alpha = o.alpha, beta = o.beta},
                 focal = {gamma = o.gamma}}
  local opts = known[o.loss]
  if not opts then error("train: unknown loss '" .. tostring(o.loss) .. "' (ce, nllr, crl, focal)", 0) end
  opts.reduction = reduction
  return crlab.loss.byName(o.loss, opts)
end

local function make_optimizer(o, params, grads, ranges)
  local common = {weightDecay = o['weight-decay'], noDecay = o['no-decay-bn-bias'] and {'bn', 'bias'} or nil}
  if o.optimizer == 'sgd' then
    common.momentum, common.nesterov = o.momentum, o.nesterov
    return optim.sgd(params, grads, common, ranges)
  elseif o.optimizer == 'adam' then
    return optim.adam(params, grads, common, ranges)
  elseif o.optimizer == 'adamw' then
    return optim.adamw(params, grads, common, ranges)
  end
  error("train: unknown optimizer '" .. tostring(o.optimizer) .. "' (sgd, adam, adamw)", 0)
end

local function make_schedule(o, steps_per_epoch)
  local ms = {}
  for v in tostring(o.milestones):gmatch('[^,%s]+') do ms[#ms + 1] = tonumber(v) end
  local ok, f = pcall(optim.schedule, {kind = o.schedule, lr = o.lr, epochs = o.epochs, milestones = ms,
                                      gamma = o['lr-gamma'], warmup = o.warmup, stepSize = 1 / steps_per_epoch})
  if not ok then error('train: --schedule: ' .. tostring(f):gsub('^[^:\n]*:%d+: ', ''):gsub('^schedule: ', ''), 0) end
  return f
end

---------------------------------------------------------------------------
-- progress display

local Progress = {}
Progress.__index = Progress

local function new_progress(quiet)
  local tty = C.crl_isatty(1) == 1
  return setmetatable({tty = tty, quiet = quiet, last = 0, period = tty and 0.2 or 15}, Progress)
end

local function fmt_time(s)
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format('%d:%02d:%02d', s / 3600, (s / 60) % 60, s % 60) end
  return string.format('%d:%02d', s / 60, s % 60)
end

-- True when a progress line is due: every 0.2 s on a terminal, 15 s
-- otherwise, and at the end. Quiet runs keep the rhythm too, since that is
-- when the trainer reads its sums back (and checks the loss).
function Progress:due(final)
  local now = C.crl_time_seconds()
  if not final and now - self.last < self.period then return false end
  self.last = now
  return true
end

function Progress:update(epoch, epochs, i, n, loss, acc, ips, elapsed, final)
  if self.quiet then return end
  local eta = i > 0 and elapsed / i * (n - i) or 0
  if self.tty then
    local width = 24
    local filled = math.floor(width * i / n)
    io.write(string.format('\r\27[Kepoch %d/%d [%s%s] %d/%d  loss %.4f  acc %.2f%%  %.0f img/s  %s %s',
                           epoch, epochs, string.rep('=', filled), string.rep(' ', width - filled), i, n, loss,
                           100 * acc, ips, final and 'took' or 'ETA', fmt_time(final and elapsed or eta)))
    if final then io.write('\n') end
  else
    io.write(string.format('epoch %d/%d  batch %d/%d  loss %.4f  acc %.2f%%  %.0f img/s  %s %s\n', epoch,
                           epochs, i, n, loss, 100 * acc, ips, final and 'took' or 'ETA',
                           fmt_time(final and elapsed or eta)))
  end
  io.flush()
end

---------------------------------------------------------------------------
-- evaluation: loss, top-1, top-5, ECE (15 equal-width confidence bins),
-- summed in C batch by batch (crlab.metrics) and read back once

local ECE_BINS = 15

-- crit: any criterion (its per-example losses are summed, whatever its
-- reduction); device: where the model is ('cpu' by default). Returns
-- {loss, acc, top5, ece, n, logitNorm (mean L2 norm of the logits), oneoff
-- (fraction predicted within one class of the label), bins (per confidence
-- bin: {count, sum of confidences, correct})}.
function M.evaluate(model, crit, batches, device)
  model:evaluate()
  local stats = metrics.new{bins = ECE_BINS}
  local up = M.uploader(device)
  for _, xh, yh in batches:epoch() do
    local x, y = up('x', xh), up('y', yh)
    local out = model:forward(x)
    local _, per = crit:forwardTensor(out, y)
    stats:add(out, y, per)
  end
  model:training()
  local s = stats:summary()
  local bins = {}
  for i, b in ipairs(stats:bins()) do bins[i] = {b.count, b.confidenceSum, b.correct} end
  return {loss = s.loss, acc = s.acc, top5 = s.top5, ece = s.ece, n = s.n, logitNorm = s.logitNorm,
          oneoff = s.oneoff, bins = bins}
end

---------------------------------------------------------------------------
-- checkpoints

local function state_tensors(model, opt)
  local list = {}
  for _, np in ipairs(model:namedParameters()) do list[#list + 1] = {'model.' .. np[1], np[2]} end
  for _, nb in ipairs(model:namedBuffers()) do list[#list + 1] = {'model.' .. nb[1], nb[2]} end
  local ost, ometa = {}, {}
  if opt then ost, ometa = opt:state() end
  for _, t in ipairs(ost) do if t[2] then list[#list + 1] = t end end
  return list, ometa
end

-- extra: more metadata (overrides: the JSON list of --override changes;
-- early_stop: the epoch an onEpoch hook stopped the run at).
local function save_checkpoint(path, model, opt, o, epoch, best, best_epoch, extra)
  local list, ometa = state_tensors(model, opt)
  local rng = crlab.getRNGState()
  local meta = {
    format = M.FORMAT, model = o.model, loss = o.loss, dataset = o.dataset, epoch = epoch,
    rng_seed = string.format('%d', rng.seed), rng_offset = string.format('%.0f', rng.offset),
    best_acc = best, best_epoch = best_epoch, optimizer = o.optimizer, optim_steps = ometa.steps or 0,
    options = json.encode(o),
  }
  for k, v in pairs(extra or {}) do meta[k] = v end
  ckpt.save(path, list, meta)
end

local function check_format(path, meta)
  if meta.format ~= M.FORMAT then
    error(string.format("train: %s is not a crlab checkpoint (format '%s', expected '%s')", path,
                        tostring(meta.format), M.FORMAT), 0)
  end
end

-- Copies the checkpoint's tensors into the model (and optimiser); any
-- mismatch names the file and the tensor.
function M.load_into(path, model, opt, o)
  local tensors, meta = ckpt.load(path)
  check_format(path, meta)
  if o and meta.model ~= o.model then
    error(string.format("train: %s was written for model '%s', not '%s' (pass --model %s or another --out)",
                        path, tostring(meta.model), o.model, tostring(meta.model)), 0)
  end
  local list = state_tensors(model, opt)
  for _, nt in ipairs(list) do
    local name, t = nt[1], nt[2]
    local src = tensors[name]
    if not src then error(string.format('train: %s has no tensor %s (another model?)', path, name), 0) end
    if tostring(src:size()) ~= tostring(t:size()) then
      error(string.format('train: %s holds %s of size %s, the model needs %s', path, name, tostring(src:size()),
                          tostring(t:size())), 0)
    end
    t:copy(src)
  end
  if opt then opt:loadState(tensors, {steps = meta.optim_steps}) end
  return meta
end

---------------------------------------------------------------------------

local CSV_FIELDS = {'epoch', 'lr', 'train_loss', 'train_acc', 'test_loss', 'test_acc', 'test_top5', 'test_ece',
                    'epoch_seconds', 'images_per_sec'}

local function csv_row(rec)
  local row = {}
  for i, k in ipairs(CSV_FIELDS) do row[i] = rec[k] == nil and '' or string.format('%.6g', rec[k]) end
  return table.concat(row, ',')
end

-- Writes text to path through a temporary file and a rename, so that an
-- interruption leaves the old file or the new one.
-- The buffer is written out at close: a full disk may show only there.
local function replace_file(path, text)
  local ok, why = core.replaceFile(path, text)
  if not ok then error('train: ' .. why, 0) end
end
M.replace_file = replace_file

-- Appends one line to a metrics file; a failed write (a full disk shows at
-- close) is an error naming the file. The epoch's checkpoint is written
-- after its metrics, so a resume rewrites both from the last checkpoint.
local function append_line(path, line)
  local f, err = io.open(path, 'a')
  if not f then error('train: cannot append to ' .. path .. ': ' .. tostring(err), 0) end
  local ok, werr = f:write(line, '\n')
  local closed, cerr = f:close()
  if ok and not closed then ok, werr = nil, cerr end
  if not ok then error('train: cannot append to ' .. path .. ': ' .. tostring(werr), 0) end
end
M.append_line = append_line
M.mkdir_p = mkdir_p

function M.run(spec)
  local o, x = M.resolve(spec)
  local dir = run_dir(o)
  local ckpt_path, best_path = dir .. '/checkpoint.safetensors', dir .. '/best.safetensors'
  local override_log, overrides, early_stop = {}, nil, 0
  local held = io.open(ckpt_path, 'rb')
  if held then held:close() end
  if held and not o.resume and not o.overwrite then
    error(string.format('train: %s already holds a run (%s): add --resume to continue it, --overwrite to start it ' ..
                        'afresh (its checkpoint and metrics are replaced), or give another --out', dir, ckpt_path), 0)
  end
  if o.resume and o.overwrite then
    error('train: --resume and --overwrite exclude each other (continue the run, or start it afresh)', 0)
  end
  if o.resume then
    local f = io.open(ckpt_path, 'rb')
    if not f then error('train: --resume: no checkpoint at ' .. ckpt_path, 0) end
    f:close()
    local meta = ckpt.metadata(ckpt_path)
    check_format(ckpt_path, meta)
    local ok, saved = pcall(json.decode, meta.options or '')
    if not ok or type(saved) ~= 'table' then
      error('checkpoint: ' .. ckpt_path .. ' is damaged: its options do not read (' .. tostring(saved) .. ')', 0)
    end
    -- a run of an experiment file resumes from that file, named by the
    -- saved options when the command line does not name it
    if o.experiment == '' and type(saved.experiment) == 'string' and saved.experiment ~= '' then
      local f = io.open(saved.experiment, 'r')
      if not f then
        error(string.format('train: --resume: the experiment file %s saved with the run cannot be read (%s); if ' ..
                            'it moved, or the run started in another folder, give its path with --experiment ' ..
                            '(its CRC-32 must match)', saved.experiment, ckpt_path), 0)
      end
      f:close()
      local again = {}
      for k, v in pairs(spec) do again[k] = v end
      again.experiment = saved.experiment
      given_options[again] = given_options[spec]
      o, x = M.resolve(again)
    end
    local crc_now, crc_saved = o['experiment-crc'], saved['experiment-crc']
    local r, changes = M.resume_options(o, saved, ckpt_path)
    if o.experiment ~= '' and crc_saved ~= nil and crc_now ~= crc_saved then
      if not o.override then
        error(string.format('train: --resume: the experiment file %s has changed since the run started (CRC-32 ' ..
                            '%s, the saved run\'s %s; %s): resume with the file as it was, start another run with ' ..
                            'another --out, or add --override (recorded in metrics.jsonl)', o.experiment,
                            tostring(crc_now), tostring(crc_saved), ckpt_path), 0)
      end
      changes['experiment-crc'] = {crc_saved, crc_now}
    end
    r['experiment-crc'], r.transform = crc_now, o.transform
    given_options[r], resolved[r] = given_options[o], x
    o = r
    if next(changes) then overrides = changes end
    local okl, log = pcall(json.decode, meta.overrides or '[]')
    if okl and type(log) == 'table' then override_log = log end
    early_stop = tonumber(meta.early_stop) or 0
    for _, k in ipairs({'epoch', 'best_epoch', 'optim_steps', 'rng_seed', 'rng_offset', 'best_acc'}) do
      local v = tonumber(meta[k])
      if not v or v ~= v or math.abs(v) == math.huge or (k ~= 'best_acc' and (v % 1 ~= 0 or v < 0)) or
         (k == 'epoch' and v < 1) then
        error(string.format("checkpoint: %s is damaged: its %s is '%s' (%s)", ckpt_path, k, tostring(meta[k]),
                            k == 'best_acc' and 'a number expected' or
                            k == 'epoch' and 'an integer >= 1 expected' or 'an integer >= 0 expected'), 0)
      end
    end
  end
  M.check_options(o)
  local device = M.check_device(o)
  if o.threads > 0 and C.crl_set_num_threads(o.threads) ~= 0 then
    error('train: --threads: ' .. core.last_error():gsub('^[%w_]+: ', ''), 0)
  end
  crlab.manualSeed(o.seed)
  local ds = x.dataset or data.load(o.dataset, o.data ~= '' and o.data or nil,
                                   {crop = o.crop >= 0 and o.crop or nil, flip = o.flip or nil, coarse = o.coarse,
                                    extra = o.extra, bbox = o.bbox, fold = o.fold, size = o['image-size']})
  local train_split = o['train-limit'] > 0 and ds.train:head(o['train-limit']) or ds.train
  local test_split = o['test-limit'] > 0 and ds.test:head(o['test-limit']) or ds.test
  local K = type(ds.classes) == 'table' and #ds.classes or ds.classes
  local size = (ds.size == 224 and not x.dataset) and o['image-size'] or ds.size
  local recipe = ds.recipe or {}
  local transform = {train = x.transform and x.transform.train or recipe.train,
                     test = x.transform and x.transform.test or recipe.test}
  -- images held in memory are fed as they are: each split must fit the model
  for _, s in ipairs({{'training', train_split}, {'test', test_split}}) do
    local im = s[2].images
    if im and (im:size(3) ~= size or im:size(4) ~= size) then
      error(string.format('train: the %s images (%s) are %dx%d; the model takes %dx%d, the size of %s', s[1],
                          s[2].files and s[2].files[1] or o.dataset, im:size(3), im:size(4), size, size, o.dataset), 0)
    end
  end
  local model = x.model
  if x.model == nil then
    local okm, m = pcall(models.build, o.model, {channels = ds.channels, classes = K, size = size})
    if not okm then error('train: --model: ' .. tostring(m):gsub('^[^:\n]*:%d+: ', ''), 0) end
    model = m
  elseif callable(x.model) then
    model = x.model({channels = ds.channels, classes = K, size = size, dataset = o.dataset})
  end
  if type(model) ~= 'table' or type(model.forward) ~= 'function' or type(model.getParameters) ~= 'function' then
    error('train: model: the function returned ' .. type(model) .. ', not a module', 0)
  end
  -- the images need no gradient; only Sequential knows how to skip it (a
  -- model of one's own may be any module, a Concat or a single layer)
  if model.skipInputGradient then model:skipInputGradient() end
  if o['cuda-graph'] then M.check_graph(model, o.model) end
  -- moved before the slabs are made: the optimiser takes its device from them
  if device == 'cuda' then
    model:cuda()
    -- process-wide: set either way, so that an earlier run's choice does not carry over
    crlab.cuda.bf16((o.precision or 'fp32') == 'bf16')
  end
  local params, grads, ranges = model:getParameters()
  local crit = x.loss or make_loss(o, 'mean')
  local opt
  if x.optimizer then
    opt = x.optimizer(params, grads, ranges)
    for _, f in ipairs({'step', 'state', 'loadState'}) do
      if type(opt) ~= 'table' or type(opt[f]) ~= 'function' then
        error('train: optimizer: the function returned ' .. (type(opt) == 'table' and 'an object without ' .. f ..
              '()' or type(opt)) .. '; it must return an optimiser with step(lr), state() and loadState()', 0)
      end
    end
  else
    opt = make_optimizer(o, params, grads, ranges)
  end
  local train_batches = data.loader(train_split, {batch = o.batch, transform = transform.train,
                                                 threads = o.workers, channels = ds.channels, skipBad = o['skip-bad']})
  local test_batches = data.loader(test_split, {batch = o['eval-batch'], transform = transform.test, shuffle = false,
                                                threads = o.workers, channels = ds.channels, skipBad = o['skip-bad']})
  local sched
  if x.schedule == nil then
    sched = make_schedule(o, train_batches:count())
  else
    local f = x.schedule
    sched = function(e)
      local lr = f(e)
      if type(lr) ~= 'number' or lr ~= lr or lr < 0 or lr == math.huge then
        error(string.format('train: schedule: the function returned %s at epoch %.4f; it must return a learning ' ..
                            'rate, a finite number >= 0', tostring(lr), e), 0)
      end
      return lr
    end
  end
  local start, best, best_epoch = 1, -1, 0
  local history = {}
  mkdir_p(dir) -- only now: a bad name or file above leaves no folder behind
  if o.resume then
    local meta = M.load_into(ckpt_path, model, opt, o)
    start = tonumber(meta.epoch) + 1
    best, best_epoch = tonumber(meta.best_acc), tonumber(meta.best_epoch)
    crlab.setRNGState({seed = tonumber(meta.rng_seed), offset = tonumber(meta.rng_offset)})
    -- keep the metrics of the epochs the checkpoint covers, once each (an
    -- interrupted run may have written an epoch's metrics, or part of a
    -- line, after its last checkpoint); metrics.csv is remade from them
    local lines = {}
    local mf = io.open(dir .. '/metrics.jsonl', 'r')
    if mf then
      for line in mf:lines() do
        local ok, rec = pcall(json.decode, line)
        if ok and type(rec) == 'table' and type(rec.epoch) == 'number' and rec.epoch < start and
           rec.epoch > #history then
          lines[#lines + 1] = line
          history[#history + 1] = rec
        end
      end
      mf:close()
    end
    lines[#lines + 1] = ''
    replace_file(dir .. '/metrics.jsonl', table.concat(lines, '\n'))
  else
    replace_file(dir .. '/metrics.jsonl', '')
  end
  local rows = {table.concat(CSV_FIELDS, ','), ''}
  for i, rec in ipairs(history) do rows[i + 1], rows[i + 2] = csv_row(rec), '' end
  replace_file(dir .. '/metrics.csv', table.concat(rows, '\n'))
  if not o.quiet then
    local where = device == 'cuda' and 'on ' .. crlab.cuda.deviceName() or C.crl_get_num_threads() .. ' threads'
    if device == 'cuda' and o.precision == 'bf16' then where = where .. ' (bf16 mixed precision)' end
    print(string.format('%s: %s on %s (%d train / %d test images), loss %s, %d parameters, %s -> %s',
                        start > 1 and 'resuming at epoch ' .. start or 'training', o.model, o.dataset,
                        train_split:size(), test_split:size(), tostring(crit), params:numel(), where, dir))
  end
  local progress = new_progress(o.quiet)
  -- the epoch's loss and accuracy are summed in C, step by step, and read
  -- back only for a progress line and at the end of the epoch
  local train_stats = metrics.new{bins = 0}
  local stepper = M.stepper(model, crit, grads, train_stats, device, o['cuda-graph'])
  local nb = train_batches:count()
  local last = o.epochs
  if o['stop-after'] > 0 then last = math.min(o.epochs, start + o['stop-after'] - 1) end
  if early_stop > 0 then
    last = start - 1 -- an onEpoch hook ended this run
    if not o.quiet then print(string.format('the run was stopped at epoch %d by its onEpoch hook; nothing to do', early_stop)) end
  end
  if overrides then
    local list = {}
    for k, v in pairs(overrides) do list[#list + 1] = string.format('%s %s (was %s)', k, tostring(v[2]), tostring(v[1])) end
    table.sort(list)
    if not o.quiet then print('resuming with changed options (--override): ' .. table.concat(list, ', ')) end
    override_log[#override_log + 1] = {epoch = start, changes = overrides}
  end
  local extra = {overrides = json.encode(override_log)}
  local step_info = {epoch = 0, batch = 0, batches = nb, step = 0, lr = 0,
                     stats = function() return train_stats:summary() end}
  for epoch = start, last do
    local t0 = C.crl_time_seconds()
    local lr = 0
    train_stats:reset()
    local function read_back()
      local s = train_stats:summary()
      if s.nanBatch > 0 then
        error(string.format('train: the loss became NaN at epoch %d, batch %d (lr %g)', epoch, s.nanBatch,
                            sched(epoch - 1 + (s.nanBatch - 1) / nb)), 0)
      end
      return s
    end
    for i, xh, yh in train_batches:epoch() do
      lr = sched(epoch - 1 + (i - 1) / nb)
      stepper.step(xh, yh)
      if o.clip > 0 then optim.clipGradNorm(grads, o.clip) end
      opt:step(lr)
      if x.onStep then
        step_info.epoch, step_info.batch, step_info.lr = epoch, i, lr
        step_info.step = (epoch - 1) * nb + i
        x.onStep(step_info)
      end
      if progress:due(i == nb) then
        local s = read_back()
        local el = C.crl_time_seconds() - t0
        progress:update(epoch, o.epochs, i, nb, s.loss, s.acc, s.n / el, el, i == nb)
      end
    end
    stepper.reset() -- evaluation may grow the model's buffers: capture again next epoch
    local train_time = C.crl_time_seconds() - t0
    local tr = read_back()
    -- a step can leave NaN or infinite weights though its loss was finite
    -- (an epoch's last): stop before they are evaluated or saved
    for _, nt in ipairs(state_tensors(model, nil)) do
      local v = nt[2]:sum()
      if v ~= v or v == math.huge or v == -math.huge then
        error(string.format('train: the weights became NaN or infinite in epoch %d (%s holds such values after ' ..
                            'the last step, lr %g); %s', epoch, nt[1], lr, epoch > 1 and
                            'the checkpoint of epoch ' .. (epoch - 1) .. ', ' .. ckpt_path .. ', is kept' or
                            'no checkpoint was written'), 0)
      end
    end
    local ev = M.evaluate(model, crit, test_batches, device)
    local rec = {epoch = epoch, lr = lr, train_loss = tr.loss, train_acc = tr.acc,
                 test_loss = ev.loss, test_acc = ev.acc, test_top5 = K > 5 and ev.top5 or nil, test_ece = ev.ece,
                 epoch_seconds = C.crl_time_seconds() - t0, images_per_sec = tr.n / train_time,
                 test_logit_norm = ev.logitNorm, test_oneoff = ds.ordinal and ev.oneoff or nil, test_bins = ev.bins,
                 override = epoch == start and overrides or nil}
    history[#history + 1] = rec
    append_line(dir .. '/metrics.jsonl', json.encode(rec))
    append_line(dir .. '/metrics.csv', csv_row(rec))
    if ev.acc > best then
      best, best_epoch = ev.acc, epoch
      local list = state_tensors(model, nil)
      ckpt.save(best_path, list, {format = M.FORMAT, model = o.model, loss = o.loss, dataset = o.dataset,
                                  epoch = epoch, test_acc = ev.acc})
    end
    save_checkpoint(ckpt_path, model, opt, o, epoch, best, best_epoch, extra)
    if not o.quiet then
      print(string.format('epoch %d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%%%s ECE %.4f | %.1f s',
                          epoch, rec.train_loss, 100 * rec.train_acc, ev.loss, 100 * ev.acc,
                          K > 5 and string.format(' top-5 %.2f%%', 100 * ev.top5) or '', ev.ece,
                          rec.epoch_seconds))
    end
    -- the hook sees the epoch saved; false ends the run there, for good
    if x.onEpoch and x.onEpoch(rec, {epoch = epoch, epochs = o.epochs, dir = dir, model = model, best = best,
                                     bestEpoch = best_epoch}) == false then
      early_stop = epoch
      extra.early_stop = epoch
      save_checkpoint(ckpt_path, model, opt, o, epoch, best, best_epoch, extra)
      if not o.quiet then print(string.format('stopped at epoch %d by the onEpoch hook', epoch)) end
      break
    end
  end
  if train_batches:skipped() > 0 and not o.quiet then
    print(string.format('skipped %d unreadable training images', train_batches:skipped()))
  end
  train_batches:close()
  test_batches:close()
  return {history = history, best_acc = best, best_epoch = best_epoch, dir = dir, model = model,
          params = params, stopped = early_stop > 0 and early_stop or nil, options = o}
end

return M
