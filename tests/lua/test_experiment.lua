-- Experiments as Lua: crlab.train.run and --experiment FILE with Lua objects
-- for the model, augmentation, schedule, loss, optimiser, dataset and hooks;
-- an experiment file training and resuming bit for bit; resume refusing
-- changed options and changed files unless --override, which is recorded;
-- early stopping by a hook; the errors of bad fields.
local t = require 'tap'
local crlab = require 'crlab'
local data = require 'crlab.data'
local train = require 'crlab.train'
local json = require 'crlab.json'
local ckpt = require 'crlab.checkpoint'

local tmp = os.tmpname()
os.remove(tmp)
os.execute('mkdir -p ' .. tmp)

-- a small in-memory dataset: 4 classes, class c lights up the c-th band of rows
local function make_split(n, seed)
  crlab.manualSeed(seed)
  local img = (crlab.rand(n, 1, 12, 12) * 60):floor()
  local labels = {}
  for i = 1, n do
    local c = (i * 3 + seed) % 4
    labels[i] = c
    img[i]:narrow(2, c * 3 + 1, 3):add(150)
  end
  return data.split(img:byte(), labels)
end
_G.EXP_DATA = {train = make_split(64, 1), test = make_split(24, 2), classes = {'a', 'b', 'c', 'd'}, channels = 1,
               size = 12, name = 'bands'}

-- the experiment file: an inline model, pipeline and schedule, a loss
-- object, optimiser options, hooks counting their calls
local file = tmp .. '/exp.lua'
local write_file = require('testio').write
local EXP = [[
local nn, T = crlab.nn, crlab.transforms
local calls = _G.EXP_CALLS or {steps = 0, epochs = 0} -- the test's counters
return {
  name = 'bands-tiny',
  dataset = EXP_DATA,
  model = function(info)
    return nn.Sequential(nn.Conv2d(info.channels, 4, 3, {padding = 1, bias = false}),
                         nn.BatchNorm2d(4, {relu = true}), nn.Flatten(),
                         nn.Linear(4 * info.size * info.size, info.classes))
  end,
  transform = {train = {T.randomCrop(12, {pad = 1}), T.hflip(), T.normalize({0.3}, {0.3})},
               test = {T.normalize({0.3}, {0.3})}},
  schedule = function(e) return e < 1 and 0.05 * (e + 0.25) or 0.05 / e end,
  loss = crlab.loss.crl{alpha = 2, beta = 1},
  optimizer = {'sgd', momentum = 0.9, nesterov = true, weight_decay = 1e-4},
  epochs = 3, batch = 16, workers = 1, quiet = true, seed = 7,
  onStep = function(s) calls.steps = calls.steps + 1; calls.lastLr = s.lr end,
  onEpoch = function(rec) calls.epochs = calls.epochs + 1; calls.lastAcc = rec.test_acc end,
}
]]
write_file(file, EXP)

local function run(args)
  local o = train.parse(args)
  return train.run(o)
end

-- the whole run, and the same run stopped after epoch 1 and resumed twice
_G.EXP_CALLS = {steps = 0, epochs = 0}
local whole = run({'--experiment', file, '--out', tmp .. '/whole'})
t.eq(#whole.history, 3, 'an experiment file trains its epochs')
t.ok(_G.EXP_CALLS.steps == 12 and _G.EXP_CALLS.epochs == 3, string.format('onStep ran once per step (%d of 12), ' ..
     'onEpoch once per epoch (%d of 3)', _G.EXP_CALLS.steps, _G.EXP_CALLS.epochs))
t.eq(_G.EXP_CALLS.lastAcc, whole.history[3].test_acc, 'onEpoch receives the epoch\'s metrics record')
t.close(whole.history[1].lr, 0.05 * (0.75 + 0.25), 1e-12, 'the schedule function sets the rate (epoch 1\'s last ' ..
        'step at e = 0.75)')
local o = whole.options
t.ok(o.loss == 'crl' and o.alpha == 2 and o.beta == 1, 'a crlab.loss object stands for its options (crl, alpha 2)')
t.ok(o.optimizer == 'sgd' and o.nesterov == true and o['weight-decay'] == 1e-4,
     'optimizer options (weight_decay written for --weight-decay)')
t.ok(o.model == 'bands-tiny' and o.dataset == 'bands' and o.schedule == 'lua',
     "Lua objects are recorded by name: model 'bands-tiny' (--name), dataset 'bands', schedule 'lua'")

run({'--experiment', file, '--out', tmp .. '/split', '--stop-after', '1'})
run({'--out', tmp .. '/split', '--resume', '--stop-after', '1'}) -- the file found from the saved options
local resumed = run({'--out', tmp .. '/split', '--resume'})
t.eq((whole.params - resumed.params):abs():max(), 0, 'stopped after epoch 1 and 2 and resumed: bitwise the weights ' ..
     'of the uninterrupted run')
t.ok(resumed.history[3].train_loss == whole.history[3].train_loss and #resumed.history == 3,
     'and the same metrics for every epoch')

-- a command line overrides the file's fields
local short = run({'--experiment', file, '--out', tmp .. '/short', '--epochs', '1', '--loss', 'ce'})
t.ok(#short.history == 1 and short.options.loss == 'ce', 'options given on the command line override the file')

-- resume refuses changed options and a changed file, unless --override
t.errors(function() run({'--out', tmp .. '/split', '--resume', '--epochs', '4', '--seed', '8'}) end,
         "--seed 8 differs from the saved run's 7", 'resume refuses an option that differs from the saved run')
t.errors(function() run({'--out', tmp .. '/split', '--resume', '--epochs', '4', '--alpha', '3'}) end,
         "--alpha 3 differs from the saved run's 2", 'and a loss parameter')
write_file(file, (EXP:gsub('0%.05 / e', '0.04 / e')))
t.errors(function() run({'--out', tmp .. '/split', '--resume', '--epochs', '4'}) end,
         'the experiment file ' .. file .. ' has changed since the run started', 'resume refuses an edited ' ..
         'experiment file (its CRC-32 differs)')
t.errors(function() run({'--out', tmp .. '/split', '--epochs', '4', '--alpha', '3', '--override'}) end,
         '--override applies only with --resume', '--override without --resume is refused (it would start the run ' ..
         'afresh over the saved one)')
local over = run({'--out', tmp .. '/split', '--resume', '--epochs', '4', '--alpha', '3', '--override'})
t.ok(#over.history == 4 and over.options.alpha == 3, '--override accepts the changes and trains on')
local last
for line in io.lines(tmp .. '/split/metrics.jsonl') do last = json.decode(line) end
t.ok(last.epoch == 4 and last.override and last.override.alpha and last.override.alpha[1] == 2 and
     last.override.alpha[2] == 3 and last.override['experiment-crc'] ~= nil,
     'the override is recorded in metrics.jsonl: alpha 2 -> 3 and the file\'s CRC at epoch 4')
local meta = ckpt.metadata(tmp .. '/split/checkpoint.safetensors')
local log = json.decode(meta.overrides)
t.ok(#log == 1 and log[1].epoch == 4 and log[1].changes.alpha[2] == 3, 'and in the checkpoint\'s list of overrides')
write_file(file, EXP)

-- early stopping: onEpoch returning false ends the run; a resume does nothing
do
  local o2 = train.parse({'--experiment', file, '--out', tmp .. '/early'})
  local calls = 0
  o2.quiet = true
  local stop = train.run({experiment = file, out = tmp .. '/early', onEpoch = function()
    calls = calls + 1
    return calls < 2
  end})
  t.ok(#stop.history == 2 and stop.stopped == 2, 'onEpoch returning false stops the run after that epoch')
  local again = train.run({experiment = file, out = tmp .. '/early', resume = true,
                           onEpoch = function() return true end})
  t.ok(#again.history == 2 and again.stopped == 2, 'and a resume of the stopped run trains nothing')
  t.ok(o2.experiment == file, 'parse keeps the experiment\'s path')
end

-- the experiment file moved (or the run resumed from another folder, its path being relative): the file is the
-- same by its CRC-32, so --experiment NEWPATH resumes; without it, the error says where the saved path came from
do
  local a, b = tmp .. '/moved-a.lua', tmp .. '/moved-b.lua'
  write_file(a, EXP)
  run({'--experiment', a, '--out', tmp .. '/moved', '--stop-after', '1'})
  os.rename(a, b)
  t.errors(function() run({'--out', tmp .. '/moved', '--resume', '--stop-after', '1'}) end,
           'the experiment file ' .. a .. ' saved with the run cannot be read', 'resume names the saved experiment ' ..
           'path it cannot read')
  local ok, r = pcall(run, {'--out', tmp .. '/moved', '--resume', '--stop-after', '1', '--experiment', b})
  t.ok(ok and #r.history == 2 and r.options.experiment == b, 'resume takes the moved file by its new path (same ' ..
       'CRC-32), not as a change of the run' .. (ok and '' or ': ' .. tostring(r)))
  write_file(b, (EXP:gsub('0%.05 / e', '0.04 / e')))
  t.errors(function() run({'--out', tmp .. '/moved', '--resume', '--experiment', b}) end,
           'the experiment file ' .. b .. ' has changed since the run started', 'and still refuses it edited')
end

-- crlab.train.run with objects directly, and an optimiser function
do
  local nn = crlab.nn
  local made = 0
  local r = train.run{dataset = _G.EXP_DATA, model = nn.Sequential(nn.Flatten(), nn.Linear(144, 4)),
                      optimizer = function(p, g, ranges)
                        made = made + 1
                        return crlab.optim.adam(p, g, {}, ranges)
                      end,
                      lr = 0.01, schedule = 'constant', epochs = 1, batch = 32, workers = 1, quiet = true,
                      out = tmp .. '/direct', loss = crlab.loss.focal{gamma = 1}}
  t.ok(#r.history == 1 and made == 1 and r.options.optimizer == 'lua' and r.options.loss == 'focal' and
       r.options.gamma == 1, 'run{} takes a module, an optimiser function and a focal loss object')
end

-- a model whose outer module is not a Sequential (here a Concat of two heads, given as a function and as an
-- object): the trainer's skipping of the input gradient must not assume a container that has it
do
  local nn = crlab.nn
  local function heads()
    return nn.Concat(2, nn.Sequential(nn.Flatten(), nn.Linear(144, 2)), nn.Sequential(nn.Flatten(), nn.Linear(144, 2)))
  end
  for _, m in ipairs({{'a function', heads}, {'an object', heads()}}) do
    local ok, r = pcall(train.run, {dataset = _G.EXP_DATA, model = m[2], lr = 0.01, epochs = 1, batch = 32,
                                    workers = 1, quiet = true, out = tmp .. '/concat-' .. #m[1]})
    t.ok(ok and #r.history == 1, 'a model whose outer module is a Concat trains (given as ' .. m[1] .. ')' ..
         (ok and '' or ': ' .. tostring(r)))
  end
end

-- bad fields, each named
local base = {dataset = _G.EXP_DATA, epochs = 1, workers = 1, quiet = true, out = tmp .. '/bad'}
local function with(k, v)
  local s = {}
  for a, b in pairs(base) do s[a] = b end
  s[k] = v
  return s
end
t.errors(function() train.run(with('epochz', 3)) end, "crlab.train.run: unknown field 'epochz'", 'a misspelt field')
t.errors(function() train.run(with('epochs', '3')) end, 'epochs must be a number, got string', 'a field of the ' ..
         'wrong type')
t.errors(function() train.run(with('model', function() return 42 end)) end,
         'model: the function returned number, not a module', 'a model function returning no module')
t.errors(function() train.run(with('model', 42)) end, 'crlab.train.run: model must be a name or', 'a model of the ' ..
         'wrong kind')
t.errors(function() train.run(with('schedule', function() return nil end)) end,
         'schedule: the function returned nil at epoch 0.0000', 'a schedule function returning no rate')
t.errors(function() train.run(with('optimizer', function() return {} end)) end,
         'optimizer: the function returned an object without step()', 'an optimiser function returning no optimiser')
t.errors(function() train.run(with('transform', {train = {42}})) end, 'transform.train: ' ..
         'crlab.transforms.compose: element 1 is not a transform', 'a pipeline holding no transform')
t.errors(function() train.run(with('dataset', {train = 1, test = 2})) end, 'dataset.train must be a split',
         'a dataset table without splits')
t.errors(function() train.run(with('dataset', {'cifar10', coarse = 'yes'})) end,
         'dataset.coarse must be a boolean', 'a dataset option of the wrong type')
t.errors(function() train.run(with('onEpoch', 'stop')) end, 'onEpoch must be a function(record, info), got string',
         'a hook that is not a function')
-- one option given twice in one table, under two spellings or by a loss object and a field: refused, not one of
-- them silently dropped
t.errors(function()
  local s = with('weight_decay', 1e-4)
  s.weightDecay = 5e-4
  train.run(s)
end, 'weight-decay is given twice', 'weight_decay and weightDecay in one table')
t.errors(function()
  local s = with('loss', crlab.loss.crl{alpha = 1.5})
  s.alpha = 2
  train.run(s)
end, 'alpha is given twice', 'a crlab.loss object and its parameter as a field')
write_file(tmp .. '/twice.lua', "return {dataset = EXP_DATA, epochs = 1, workers = 1, quiet = true, out = '" .. tmp ..
           "/twice', optimizer = {'sgd', momentum = 0.5}, momentum = 0.9}")
t.errors(function() train.run{experiment = tmp .. '/twice.lua'} end, 'twice.lua: momentum is given twice',
         'an experiment file giving momentum in optimizer and as a field')
write_file(tmp .. '/notable.lua', 'return 42')
t.errors(function() train.run{experiment = tmp .. '/notable.lua'} end,
         'notable.lua must return a table of the run\'s fields, it returned number', 'an experiment file returning ' ..
         'no table')
write_file(tmp .. '/syntax.lua', 'return {')
t.errors(function() train.run{experiment = tmp .. '/syntax.lua'} end, 'syntax.lua:1:', 'a file that does not parse')
t.errors(function() data.split(crlab.zeros(2, 1, 4, 4), {0, 1}) end,
         'split: images must be a uint8 (N, C, H, W) tensor, got float32 2x1x4x4', 'data.split names a wrong dtype')
t.errors(function() data.split(crlab.zeros(2, 1, 4, 4):byte(), {0}) end,
         'split: labels must be a (2) tensor or table', 'and a label count that disagrees')

-- the shipped examples load and resolve (their training is not run here)
for _, f in ipairs({'fmnist', 'cifar_resnet110', 'custom_model', 'custom_augmentation', 'warmup_cosine'}) do
  local ok, o3 = pcall(train.resolve, {experiment = (os.getenv('CRLAB_HOME') or '.') .. '/scripts/experiments/' ..
                                                      f .. '.lua'})
  t.ok(ok and train.check_options(o3) and o3.name ~= '', 'scripts/experiments/' .. f .. '.lua resolves' ..
       (ok and '' or ': ' .. tostring(o3)))
end

os.execute("rm -rf '" .. tmp .. "'")
t.done()
