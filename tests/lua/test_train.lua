-- The trainer on a small dataset written here in the idx format: reading
-- (plain and gzipped), bad files, options, resume reproducing an
-- uninterrupted run exactly, checkpoints (atomic, mismatched, corrupt) and
-- flat memory over many steps.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local data = require 'crlab.data'
local train = require 'crlab.train'
local ckpt = require 'crlab.checkpoint'
local nn = require 'crlab.nn'
local optim = require 'crlab.optim'

local tmp = os.tmpname()
os.remove(tmp)
os.execute('mkdir -p ' .. tmp)

local function be32(n)
  return string.char(math.floor(n / 2^24) % 256, math.floor(n / 2^16) % 256, math.floor(n / 256) % 256, n % 256)
end

local write = require('testio').write

-- Images whose class is readable from the picture: class c lights up row band c.
local function make_split(n, seed)
  local imgs, labels = {}, {}
  math.randomseed(seed)
  for i = 1, n do
    local c = (i * 7 + seed) % 10
    labels[i] = string.char(c)
    local px = {}
    for r = 0, 27 do
      for col = 0, 27 do
        local on = math.floor(r / 3) == c
        px[#px + 1] = string.char(on and math.random(150, 255) or math.random(0, 60))
      end
    end
    imgs[i] = table.concat(px)
  end
  return '\0\0\8\3' .. be32(n) .. be32(28) .. be32(28) .. table.concat(imgs),
         '\0\0\8\1' .. be32(n) .. table.concat(labels)
end

local dir = tmp .. '/fmnist'
os.execute('mkdir -p ' .. dir)
local ti, tl = make_split(96, 1)
local vi, vl = make_split(40, 2)
write(dir .. '/train-images-idx3-ubyte', ti)
write(dir .. '/train-labels-idx1-ubyte', tl)
write(dir .. '/t10k-images-idx3-ubyte', vi)
write(dir .. '/t10k-labels-idx1-ubyte', vl)
os.execute('gzip -k ' .. dir .. '/t10k-images-idx3-ubyte')

-- reading
local plain = data.readIdx(dir .. '/t10k-images-idx3-ubyte')
local gz = data.readIdx(dir .. '/t10k-images-idx3-ubyte.gz')
t.eq(tostring(plain:size()), '40x28x28', 'a plain idx file reads as (N, H, W) uint8')
t.eq(plain:int():float():sum(), gz:int():float():sum(), 'the gzipped copy reads the same')
local ds = data.load('fashion-mnist', dir)
t.eq(ds.train.images:size(1), 96, 'the dataset folder loads (train)')
t.eq(tostring(ds.test.images:size()), '40x1x28x28', 'images get a channel dimension')

-- bad files
write(tmp .. '/short', '\0\0\8')
t.errors(function() data.readIdx(tmp .. '/short') end, tmp .. '/short', 'a 3-byte file is refused, naming it')
write(tmp .. '/magic', 'PK\3\4' .. string.rep('x', 20))
t.errors(function() data.readIdx(tmp .. '/magic') end, 'is not an idx file', 'a wrong magic')
write(tmp .. '/trunc', ti:sub(1, 5000))
t.errors(function() data.readIdx(tmp .. '/trunc') end, 'is truncated: the header promises 75264 bytes',
         'a truncated image file')
t.errors(function() data.readIdx(tmp .. '/missing-file') end, "cannot open '" .. tmp .. "/missing-file'",
         'a missing file')
local bad = tmp .. '/mismatch'
os.execute('mkdir -p ' .. bad)
write(bad .. '/train-images-idx3-ubyte', ti)
write(bad .. '/train-labels-idx1-ubyte', vl) -- 40 labels for 96 images
write(bad .. '/t10k-images-idx3-ubyte', vi)
write(bad .. '/t10k-labels-idx1-ubyte', vl)
t.errors(function() data.load('fashion-mnist', bad) end, 'holds 96 images but ' .. bad ..
         '/train-labels-idx1-ubyte holds 40 labels', 'a label file whose count disagrees names both files')
t.errors(function() data.load('fashion-mnist', tmp .. '/nowhere') end, 'neither', 'a missing dataset folder')

-- options
t.errors(function() train.parse({'--modle', 'cnn'}) end, "unknown option '--modle'", 'a misspelt option')
t.errors(function() train.parse({'--epochs', 'ten'}) end, "expects a number, got 'ten'", 'a non-numeric value')
-- bad values are refused up front (reliability row 14)
t.errors(function() train.parse({'--model', '--loss', 'ce'}) end, "option --model needs a value, got the option '--loss'",
         'an option whose value is missing does not take the next option as its value')
for _, bad in ipairs({{'momentum', '2', 'in [0, 1)'}, {'weight-decay', '-1', '>= 0'}, {'warmup', '-1', '>= 0'},
                      {'train-limit', '-5', 'an integer >= 0'}, {'epochs', 'nan', 'an integer >= 1'},
                      {'epochs', '1.5', 'an integer >= 1'}, {'lr', 'inf', '> 0'}, {'batch', '0', 'an integer >= 1'},
                      {'milestones', '10,x', 'comma-separated epochs'}}) do
  t.errors(function() train.parse({'--' .. bad[1], bad[2]}) end,
           'option --' .. bad[1] .. ' must be ' .. bad[3] .. ", got '" .. bad[2] .. "'",
           '--' .. bad[1] .. ' ' .. bad[2] .. ' is refused')
end
t.errors(function()
  local o = train.parse({'--data', dir, '--out', tmp .. '/x'})
  o.momentum = -0.5
  train.run(o)
end, 'option --momentum must be in [0, 1)', 'train.run checks the options of a table it is given too')
local odd = tmp .. '/odd'
os.execute('mkdir -p ' .. odd .. ' && cp ' .. dir .. '/train-* ' .. odd)
write(odd .. '/t10k-images-idx3-ubyte', '\0\0\8\3' .. be32(2) .. be32(32) .. be32(32) .. string.rep('\0', 2048))
write(odd .. '/t10k-labels-idx1-ubyte', '\0\0\8\1' .. be32(2) .. '\0\1')
t.errors(function() train.run(train.parse({'--data', odd, '--out', tmp .. '/odd-run', '--quiet'})) end,
         'the test images (' .. odd .. '/t10k-images-idx3-ubyte) are 32x32; the model takes 28x28',
         'test images of another size than the training images are refused before training')
t.ok(io.open(tmp .. '/odd-run/metrics.csv') == nil, 'and nothing was trained')

local base = {'--data', dir, '--train-limit', '64', '--batch', '16', '--lr', '0.05', '--quiet', '--threads', '2'}
local function opts(extra)
  local a = {}
  for _, v in ipairs(base) do a[#a + 1] = v end
  for _, v in ipairs(extra) do a[#a + 1] = v end
  return train.parse(a)
end
t.errors(function() train.run(opts({'--model', 'vgg16', '--out', tmp .. '/x'})) end, "unknown model 'vgg16'",
         'an unknown model name')
t.errors(function() train.run(opts({'--model', 'resnet21', '--out', tmp .. '/x'})) end, 'depth must be 6n+2',
         'a CIFAR ResNet depth that is not 6n+2')
t.errors(function() train.run(opts({'--loss', 'hinge', '--out', tmp .. '/x'})) end, "unknown loss 'hinge'",
         'an unknown loss name')
for _, bad in ipairs({{'--model', 'vgg16', "train: --model: unknown model 'vgg16'"},
                      {'--schedule', 'nope', "train: --schedule: unknown kind 'nope' (constant, multistep, cosine)"},
                      {'--optimizer', 'rms', "train: unknown optimizer 'rms'"}}) do
  local out = tmp .. '/named-' .. bad[2]
  local ok, err = pcall(train.run, opts({bad[1], bad[2], '--out', out}))
  t.ok(not ok and tostring(err):sub(1, #bad[3]) == bad[3] and io.open(out .. '/metrics.jsonl') == nil and
       os.execute("test -d '" .. out .. "'") ~= 0, bad[1] .. ' ' .. bad[2] .. ': the message alone, no Lua ' ..
       'location, and no run folder left behind: ' .. tostring(err))
end

if not crlab.cuda.available() then
  t.errors(function() train.run(opts({'--device', 'cuda', '--out', tmp .. '/x'})) end,
           'no CUDA device can be used here', 'train.run with device cuda and no GPU fails before any work')
else
  t.skip('train.run with device cuda and no GPU: this machine has one')
end
t.errors(function() train.run(opts({'--device', 'gpu', '--out', tmp .. '/x'})) end, "unknown device 'gpu'",
         'an unknown device name')
t.errors(function() train.run(opts({'--precision', 'bf16', '--out', tmp .. '/x'})) end,
         '--precision bf16 needs --device cuda', 'bf16 on the CPU is refused before any work')
t.errors(function() train.run(opts({'--precision', 'fp16', '--device', 'cuda', '--out', tmp .. '/x'})) end,
         "unknown precision 'fp16' (fp32, bf16)", 'an unknown precision is refused, even before the device is tried')
t.ok(train.defaults().precision == 'fp32', 'the default precision is fp32')
t.ok(train.usage():find('--precision', 1, true) ~= nil, 'the usage lists --precision')

-- a fresh run into a folder that holds one is refused, unless --overwrite
do
  local out = tmp .. '/again'
  train.run(opts({'--epochs', '1', '--out', out}))
  local before = io.open(out .. '/checkpoint.safetensors', 'rb'):read('*a')
  t.errors(function() train.run(opts({'--epochs', '1', '--out', out, '--lr', '0.5'})) end,
           out .. ' already holds a run', 'a fresh run into a folder holding one is refused')
  t.ok(io.open(out .. '/checkpoint.safetensors', 'rb'):read('*a') == before, 'and its checkpoint is untouched')
  local r = train.run(opts({'--epochs', '1', '--out', out, '--lr', '0.5', '--overwrite'}))
  t.ok(#r.history == 1 and r.options.lr == 0.5, '--overwrite starts it afresh')
  t.errors(function() train.run(opts({'--out', out, '--resume', '--overwrite'})) end,
           '--resume and --overwrite exclude each other', '--resume with --overwrite is refused')
end

-- resume: 2 epochs at once == the same run stopped after epoch 1 and resumed
local whole = train.run(opts({'--epochs', '2', '--out', tmp .. '/whole', '--flip', '--crop', '2'}))
train.run(opts({'--epochs', '2', '--stop-after', '1', '--out', tmp .. '/split', '--flip', '--crop', '2'}))
local resumed = train.run(opts({'--epochs', '2', '--out', tmp .. '/split', '--flip', '--crop', '2', '--resume'}))
t.eq((whole.params - resumed.params):abs():max(), 0, 'resuming after epoch 1 gives bitwise the weights of an ' ..
     'uninterrupted 2-epoch run')
t.eq(#resumed.history, 2, 'the resumed run keeps the metrics of epoch 1')
t.ok(whole.history[2].train_loss == resumed.history[2].train_loss, 'and the same epoch-2 training loss')
local lines = 0
for _ in io.lines(tmp .. '/split/metrics.jsonl') do lines = lines + 1 end
t.eq(lines, 2, 'metrics.jsonl holds one line per epoch after the resume')
do
  local rec = require('crlab.json').decode(io.open(tmp .. '/split/metrics.jsonl'):read('*l'))
  local count, correct = 0, 0
  for _, b in ipairs(rec.test_bins or {}) do count, correct = count + b[1], correct + b[3] end
  local n = count -- every test image falls in one bin
  t.ok(rec.test_bins and #rec.test_bins == 15 and n > 0 and math.abs(correct / n - rec.test_acc) < 1e-12,
       'metrics.jsonl: test_bins, 15 bins of {count, confidence sum, correct} adding up to the test accuracy')
  t.ok(type(rec.test_logit_norm) == 'number' and rec.test_logit_norm > 0 and rec.test_oneoff == nil,
       'metrics.jsonl: test_logit_norm; no test_oneoff for a dataset whose labels are not ordinal')
end
local csv = io.open(tmp .. '/split/metrics.csv'):read('*a')
t.ok(csv:find('^epoch,lr,train_loss') and select(2, csv:gsub('\n', '')) == 3, 'metrics.csv: a header and 2 rows')
t.ok(io.open(tmp .. '/split/checkpoint.safetensors.tmp') == nil, 'no temporary checkpoint is left behind')
t.ok(io.open(tmp .. '/split/best.safetensors') ~= nil, 'the best model is kept apart')

-- resume takes the saved run's options; options that define the run may not differ (reliability row 3)
t.errors(function() train.run(opts({'--epochs', '2', '--out', tmp .. '/split', '--resume', '--model', 'resnet20'})) end,
         "--model resnet20 differs from the saved run's cnn", 'resuming with another model')
train.run(opts({'--epochs', '1', '--out', tmp .. '/r3'}))
local ok3, err3 = pcall(train.run, opts({'--epochs', '2', '--out', tmp .. '/r3', '--resume', '--loss', 'ce', '--lr', '5'}))
t.ok(not ok3 and tostring(err3):find("--loss ce differs from the saved run's crl", 1, true) and
     tostring(err3):find("--lr 5 differs from the saved run's 0.05", 1, true), 'resuming with --loss ce --lr 5 is ' ..
     'refused, naming each difference: ' .. tostring(err3))
local r3 = train.run(train.parse({'--out', tmp .. '/r3', '--epochs', '2', '--resume', '--quiet'}))
t.eq(#r3.history, 2, "the README's form --out X --epochs N --resume continues the run with its saved options")
local _, m3 = ckpt.load(tmp .. '/r3/checkpoint.safetensors')
local o3 = require('crlab.json').decode(m3.options)
t.ok(m3.loss == 'crl' and o3.lr == 0.05 and o3['train-limit'] == 64 and o3.data == dir and o3.epochs == 2,
     'and its checkpoint records the saved loss, lr, limit and data with the new epoch count')
t.errors(function() train.run(train.parse({'--out', tmp .. '/r3', '--epochs', '3', '--resume', '--flip'})) end,
         "--flip=true differs from the saved run's false", 'a boolean option that differs is named too')

-- killed after epoch 2's metrics were written, before its checkpoint (and mid-line): the resume
-- leaves both metrics files with each epoch once (reliability row 4)
train.run(opts({'--epochs', '2', '--stop-after', '1', '--out', tmp .. '/r4'}))
local function append(path, text)
  local f = assert(io.open(path, 'a'))
  f:write(text)
  f:close()
end
append(tmp .. '/r4/metrics.jsonl', '{"epoch":2,"lr":0.01,"train_loss":9}\n{"epoch":3,"lr"')
append(tmp .. '/r4/metrics.csv', '2,0.01,9,0.5,1,0.5,,0.1,1,100\n3,0.0')
train.run(opts({'--epochs', '2', '--out', tmp .. '/r4', '--resume'}))
local function epochs_of(path, pattern)
  local e = {}
  for line in io.lines(path) do e[#e + 1] = line:match(pattern) end
  return table.concat(e, ' ')
end
t.eq(epochs_of(tmp .. '/r4/metrics.csv', '^(%d+),'), '1 2', 'metrics.csv holds epochs 1 and 2 once each after ' ..
     'a resume from a kill between the metrics and the checkpoint')
t.eq(epochs_of(tmp .. '/r4/metrics.jsonl', '^{"epoch":(%d+)'), '1 2', 'and so does metrics.jsonl')
t.ok(io.open(tmp .. '/r4/metrics.csv'):read('*l'):find('^epoch,lr,'), 'metrics.csv keeps its header')

-- weights that become NaN on the last batch of epoch 2 (4 batches an epoch): the run stops naming the
-- epoch, and the checkpoint of epoch 1 stays (reliability row 5)
local sgd = optim.sgd
optim.sgd = function(...)
  local o5 = sgd(...)
  local step, steps = o5.step, 0
  o5.step = function(self, lr)
    step(self, lr)
    steps = steps + 1
    if steps == 8 then self.params:fill(0 / 0) end
  end
  return o5
end
local ok5, err5 = pcall(train.run, opts({'--epochs', '3', '--out', tmp .. '/r5'}))
optim.sgd = sgd
t.ok(not ok5 and tostring(err5):find('epoch 2', 1, true) and tostring(err5):find('NaN', 1, true) and
     tostring(err5):find(tmp .. '/r5/checkpoint.safetensors', 1, true), 'weights that became NaN on the last ' ..
     'batch of an epoch stop the run naming the epoch and the checkpoint kept: ' .. tostring(err5))
t.eq(ckpt.metadata(tmp .. '/r5/checkpoint.safetensors').epoch, '1', 'the checkpoint of epoch 1 is kept')

-- a checkpoint whose metadata records a fractional epoch is refused as damaged (reliability row 14)
local tens14, meta14 = ckpt.load(tmp .. '/r3/checkpoint.safetensors')
local list14 = {}
for _, name in ipairs(tens14.names) do list14[#list14 + 1] = {name, tens14[name]} end
meta14.epoch = '1.5'
os.execute('mkdir -p ' .. tmp .. '/r14')
ckpt.save(tmp .. '/r14/checkpoint.safetensors', list14, meta14)
t.errors(function() train.run(train.parse({'--out', tmp .. '/r14', '--epochs', '3', '--resume', '--quiet'})) end,
         "is damaged: its epoch is '1.5'", 'a checkpoint recording epoch 1.5 is refused')

-- checkpoints from elsewhere
t.errors(function() train.run(opts({'--epochs', '2', '--out', tmp .. '/none', '--resume'})) end,
         'no checkpoint at', 'resuming without a checkpoint')
local raw = io.open(tmp .. '/split/checkpoint.safetensors', 'rb'):read('*a')
write(tmp .. '/cut.safetensors', raw:sub(1, #raw - 100))
t.errors(function() ckpt.load(tmp .. '/cut.safetensors') end, tmp .. '/cut.safetensors', 'a truncated checkpoint')
write(tmp .. '/junk.safetensors', 'not a checkpoint at all')
t.errors(function() ckpt.load(tmp .. '/junk.safetensors') end, 'junk.safetensors is damaged: header length', 'a junk file')
-- a header of 200000 nested arrays: json.decode's own message, not Lua's 'stack overflow'
local deep = string.rep('[', 200000) .. string.rep(']', 200000)
t.errors(function() require('crlab.json').decode(deep) end, 'json: arrays and objects nested deeper than 1000 at byte 1001',
         'JSON nested 200000 deep is refused by json.decode')
t.errors(function() require('crlab.json').decode('["a\\u-ad5"]') end, 'json: bad \\u escape',
         'a \\u escape of other than 4 hex digits is refused by json.decode')
local hdr = {}
for i = 0, 7 do hdr[#hdr + 1] = string.char(math.floor(#deep / 256 ^ i) % 256) end
write(tmp .. '/deep.safetensors', table.concat(hdr) .. deep)
t.errors(function() ckpt.load(tmp .. '/deep.safetensors') end, 'deep.safetensors is damaged: its header is not JSON ' ..
         '(json: arrays and objects nested deeper than 1000', 'a checkpoint header nested 200000 deep')
t.errors(function() ckpt.save(tmp .. '/no/such/dir/x.safetensors', {{'a', crlab.zeros(2)}}) end, 'cannot write',
         'saving into a missing folder fails cleanly')
-- a CRC32 per tensor (and one over the header) in the metadata: damage is reported as such, naming the
-- tensor; no bit flip or truncation gives an internal Lua error (reliability row 15)
local small = tmp .. '/small.safetensors'
local w15 = crlab.tensor({{1, 2, 3}, {4, 5, 6}})
ckpt.save(small, {{'model.1.weight', w15}, {'model.1.bias', crlab.tensor({0.5, -0.5})},
                  {'labels', crlab.tensor({3, 1, 2}):int()}, {'bytes', crlab.tensor({7, 8, 9, 10}):byte()},
                  {'empty', crlab.zeros(0)}}, {format = 'x', epoch = 3, options = '{"lr":0.1,"loss":"crl"}'})
local _, sm = ckpt.load(small)
t.ok(sm['crc32.model.1.weight'] and sm['crc32.model.1.weight']:match('^%x%x%x%x%x%x%x%x$') and
     sm['crc32.__header__'] ~= nil, 'the metadata holds a hex CRC32 per tensor and one over the header')
local good = io.open(small, 'rb'):read('*a')
local hlen = good:byte(1) + 256 * good:byte(2)
local function flipped(pos, bit)
  local b = good:byte(pos)
  local nb = bit and ((math.floor(b / 2 ^ bit) % 2 == 1) and b - 2 ^ bit or b + 2 ^ bit) or b
  return good:sub(1, pos - 1) .. string.char(nb) .. good:sub(pos + 1)
end
-- the data: the weight's 24 bytes, then the bias's 8, the labels' 12, the bytes' 4
write(tmp .. '/flip.safetensors', flipped(#good - 48 + 10, 3))
t.errors(function() ckpt.load(tmp .. '/flip.safetensors') end, tmp .. '/flip.safetensors is damaged: tensor ' ..
         'model.1.weight fails its CRC32 check', 'a bit flipped in a weight is reported, naming the tensor')
math.randomseed(15)
local runs, clean, internal = 0, 0, {}
local function try(bytes)
  write(tmp .. '/fuzz.safetensors', bytes)
  runs = runs + 1
  local ok, err = pcall(ckpt.load, tmp .. '/fuzz.safetensors')
  err = tostring(err)
  if not ok and err:find(tmp .. '/fuzz.safetensors is damaged', 1, true) and not err:find('attempt to') then
    clean = clean + 1
  elseif #internal < 3 then
    internal[#internal + 1] = ok and 'loaded' or err
  end
end
for _ = 1, 300 do try(flipped(math.random(1, 8 + hlen), math.random(0, 7))) end
for _ = 1, 100 do try(flipped(math.random(9 + hlen, #good), math.random(0, 7))) end
for _ = 1, 60 do try(good:sub(1, math.random(0, #good - 1))) end
t.ok(clean == runs, string.format('%d bit flips and truncations: %d refused as damaged, naming the file and no ' ..
     'internal error (%s)', runs, clean, table.concat(internal, ' | ')))

local tensors, meta = ckpt.load(tmp .. '/split/checkpoint.safetensors')
t.eq(meta.format, train.FORMAT, 'the checkpoint records its format')
t.ok(tensors['model.1.weight'] ~= nil and tensors['model.2.running_mean'] ~= nil and tensors['optim.momentum'] ~= nil,
     'it holds weights, BN running statistics and the momentum buffer by name')

-- memory stays flat: resident set after 50 and after 500 steps
local model = nn.Sequential(nn.Conv2d(1, 4, 3, {padding = 1}), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
local params, grads = model:getParameters()
local opt = optim.sgd(params, grads, {momentum = 0.9, weightDecay = 5e-4})
local crit = crlab.loss.crl{}
local Tr = require 'crlab.transforms'
local aug = Tr.compose{Tr.randomCrop(28, {pad = 2}), Tr.hflip(), Tr.normalize({0.3}, {0.3})}
local batches = data.loader(ds.train, {batch = 16, transform = aug, threads = 2})
local step, rss50 = 0, 0
while step < 500 do
  for _, x, y in batches:epoch() do
    local out = model:forward(x)
    crit:forward(out, y)
    grads:zero()
    model:backward(x, crit:backward(out, y))
    opt:step(0.01)
    step = step + 1
    if step == 50 then collectgarbage() rss50 = tonumber(crlab.C.crl_rss_bytes()) end
    if step == 500 then break end
  end
end
collectgarbage()
local rss500 = tonumber(crlab.C.crl_rss_bytes())
t.ok(math.abs(rss500 - rss50) / rss50 < 0.01, string.format('resident memory after 50 steps %.1f MiB, after 500 ' ..
     'steps %.1f MiB (%.2f%% apart)', rss50 / 2^20, rss500 / 2^20, 100 * math.abs(rss500 - rss50) / rss50))

-- after the first step, a training step allocates no tensor memory at all
local models = require 'crlab.models'
for _, name in ipairs({'cnn', 'resnet20', 'preresnet20', 'wrn-16-2', 'densenet-bc-40-4'}) do
  local m = models.build(name, {channels = 1, classes = 10, size = 28})
  local mp, mg = m:getParameters()
  local o = optim.sgd(mp, mg, {momentum = 0.9, weightDecay = 5e-4})
  local b = data.loader(ds.train, {batch = 8, transform = aug, threads = 2})
  local count, before = 0, 0
  for i, x, y in b:epoch() do
    if i == 2 then before = tonumber(crlab.C.crl_storage_allocations()) end
    local out = m:forward(x)
    crit:forward(out, y)
    mg:zero()
    m:backward(x, crit:backward(out, y))
    o:step(0.01)
    count = i
    if i == 4 then break end
  end
  t.eq(tonumber(crlab.C.crl_storage_allocations()) - before, 0,
       name .. ': steps 2-4 allocate no storage (buffers are reused)')
end

-- Runs require('crlab.train').FN(path, 3000 bytes) in a crlab process whose
-- files may not grow past 1 KiB (a full disk, for the write): its output
-- and exit status.
local function cut_short(fn, path)
  local tio = require 'testio'
  local root = os.getenv('CRLAB_HOME') or '.'
  return tio.sh("trap '' XFSZ; ulimit -f 1; " .. tio.q(root .. '/scripts/crlab') .. ' -e ' ..
                tio.q("require('crlab.train')." .. fn .. "('" .. path .. "', string.rep('x', 3000))"))
end

-- replace_file (metrics, reports): a write that fails only when the buffer is flushed at close (a full disk, here
-- the file-size limit) is an error and leaves the old file, not a truncated one renamed over it
do
  local path = tmp .. '/replaced.txt'
  write(path, 'old')
  local out, rc = cut_short('replace_file', path)
  local now = require('testio').read(path)
  t.ok(rc ~= 0 and out:find('cannot write ' .. path, 1, true) and now == 'old' and
       io.open(path .. '.tmp') == nil, 'replace_file: a write cut short at close is an error, the old file stays ' ..
       '(now ' .. #(now or '') .. ' bytes): ' .. out:match('[^\n]*'))
end

-- append_line (an epoch's metrics): a write cut short is an error naming the file, not a silent partial line
do
  local path = tmp .. '/appended.jsonl'
  write(path, 'first\n')
  local out, rc = cut_short('append_line', path)
  t.ok(rc ~= 0 and out:find('cannot append to ' .. path, 1, true),
       'append_line: a write cut short is an error naming the file: ' .. out:match('[^\n]*'))
end

os.execute('rm -rf ' .. tmp)
t.done()
