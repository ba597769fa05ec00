-- The suite runner (lua/crlab/suite.lua, scripts/suite.lua) and its report
-- (lua/crlab/report.lua, lua/crlab/stats.lua): the t distribution against
-- scipy's values; suite files expanded to runs (ids, indexes, --only) and
-- bad ones refused naming the file and the field; the smoke suite on the
-- real Fashion-MNIST killed with kill -9 (the runner's whole process group,
-- and the runner alone, its trainer left running) and run again to the end
-- with nothing finished repeated; a failing run recorded while the others
-- finish; an edited suite refused on resume; run-one's exit statuses; the
-- report's numbers recomputed here from the metrics files; the Slurm call.
local t = require 'tap'
local suite = require 'crlab.suite'
local stats = require 'crlab.stats'
local json = require 'crlab.json'
local data = require 'crlab.data'

local root = os.getenv('CRLAB_HOME') or '.'
local crlab_cmd = root .. '/scripts/crlab'
local suite_cmd = crlab_cmd .. ' ' .. root .. '/scripts/suite.lua'
local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute('mkdir -p ' .. tmp) == 0)

local tio = require 'testio'
local q, sh, read, write = tio.q, tio.sh, tio.read, tio.write




local function sleep(s) os.execute('sleep ' .. s) end

local function mtime(path)
  local p = io.popen('stat -c %Y.%y ' .. q(path) .. ' 2>/dev/null')
  local s = p:read('*l')
  p:close()
  return s
end

---------------------------------------------------------------------------
-- the t distribution and Welch's test against scipy (tests/ref/gen_t_ref.py)

local nt, nb, nw, worst = 0, 0, 0, 0
local function rel(got, want) return math.abs(got - want) / math.max(math.abs(want), 1e-300) end
local function nums(s)
  local out = {}
  for v in s:gmatch('%S+') do out[#out + 1] = tonumber(v) end
  return out
end
for line in io.lines(root .. '/tests/ref/t_ref.txt') do
  local a = line:match('^tcdf (.*)$')
  if a then
    local v = nums(a)
    local e = rel(stats.t_cdf(v[1], v[2]), v[3])
    worst = math.max(worst, e)
    if e > 1e-10 then t.ok(false, string.format('t_cdf(%g, %g) = %.17g, scipy %.17g', v[1], v[2],
                                                 stats.t_cdf(v[1], v[2]), v[3])) end
    nt = nt + 1
  end
  a = line:match('^betainc (.*)$')
  if a then
    local v = nums(a)
    t.close(stats.betainc(v[1], v[2], v[3]), v[4], 1e-11, string.format('I_%g(%g, %g) matches scipy', v[1], v[2], v[3]))
    nb = nb + 1
  end
  local xa, xb, res = line:match('^welch (.-) | (.-) | (.*)$')
  if xa then
    local w, r = stats.welch(nums(xa), nums(xb)), nums(res)
    t.ok(rel(w.t, r[1]) < 1e-10 and rel(w.p, r[2]) < 1e-9,
         string.format("Welch's t-test as scipy's ttest_ind(equal_var=False): t %.12g (%.12g), p %.12g (%.12g)", w.t,
                       r[1], w.p, r[2]))
    nw = nw + 1
  end
end
t.ok(nt >= 90 and worst < 1e-10, string.format('the t CDF matches scipy at %d points (worst relative error %.1e)',
                                               nt, worst))
t.ok(nb >= 5 and nw >= 5, 'the reference file holds the incomplete beta and Welch cases')
t.eq(stats.welch({1}, {1, 2}), nil, 'Welch needs 2 values on each side')
t.eq(stats.welch({1, 1}, {1, 1}).p, 1, 'two equal samples without spread: p = 1')
t.eq(stats.std({3}), nil, 'no standard deviation of one value')

---------------------------------------------------------------------------
-- suite files: expansion, ids, indexes, --only

local smoke = suite.load(suite.resolve('smoke'), {out = tmp .. '/smoke'})
local want_ids = {'fashion-mnist/cnn/ce/s1', 'fashion-mnist/cnn/ce/s2', 'fashion-mnist/cnn/crl-a1.5-b1/s1',
                  'fashion-mnist/cnn/crl-a1.5-b1/s2'}
local got_ids = {}
for i, r in ipairs(smoke.runs) do got_ids[i] = r.id end
t.eq(table.concat(got_ids, ' '), table.concat(want_ids, ' '), 'the smoke suite expands to 4 runs in a stable order')
t.eq(smoke.runs[3].dir, tmp .. '/smoke/fashion-mnist/cnn/crl-a1.5-b1/s1', "a run's folder is OUT/ID")
local a3 = table.concat(smoke.runs[3].args, ' ')
t.ok(a3:find('--loss=crl', 1, true) and a3:find('--alpha=1.5', 1, true) and a3:find('--beta=1', 1, true) and
     a3:find('--seed=1', 1, true) and a3:find('--epochs=3', 1, true) and a3:find('--train-limit=512', 1, true),
     "a loss table maps onto the trainer's options: " .. a3)
local function ids(runs)
  local out = {}
  for i, r in ipairs(runs) do out[i] = r.index end
  return table.concat(out, ',')
end
t.eq(ids(suite.select(smoke, 'crl-*')), '3,4', '--only crl-* selects the CRL runs')
t.eq(ids(suite.select(smoke, 's2')), '2,4', '--only s2 selects by seed (a substring of the id)')
t.eq(ids(suite.select(smoke, 'ce/s1,crl-a1.5-b1/s2')), '1,4', '--only A,B selects either')
t.eq(ids(suite.select(smoke, 'fashion-mnist/cnn/c?l')), '3,4', '? stands for one character')
t.eq(ids(suite.select(smoke, 'cifar')), '', 'a pattern no id contains selects nothing')

local fm = suite.load(suite.resolve('fmnist'), {out = tmp .. '/fm'})
t.eq(#fm.runs, 6, 'the fmnist suite: 2 losses x 3 seeds')

-- paper.lua names Stanford Cars: crlab.data knows it
local has_cars = false
for _, n in ipairs(data.names) do has_cars = has_cars or n == 'cars' end
t.ok(has_cars, "crlab.data knows 'cars', which paper.lua names")
local paper = suite.load(suite.resolve('paper'))
local byid, folds = {}, 0
for _, r in ipairs(paper.runs) do
  byid[r.id] = r
  if r.fold then folds = folds + 1 end
end
t.eq(#paper.runs, 275, 'the paper suite: 275 runs (CIFAR x2 x 5 models, SVHN, CUB, Cars, ImageNet x 2: x 5 losses ' ..
     'x 3 seeds; Adience 2 models x 5 losses x 5 folds)')
t.eq(paper.runs[1].id, 'cifar10/resnet20/ce/s1', 'the first run')
local c = byid['cifar10/resnet20/crl-a1.5-b1/s1']
t.ok(c and table.concat(c.args, ' '):find('--milestones=82,123', 1, true) and c.options['weight-decay'] == 1e-4 and
     c.options.epochs == 164, "CIFAR ResNets take He et al.'s recipe")
local w = byid['cifar100/wrn-28-10/ce/s2']
t.ok(w and w.options.milestones == '60,120,160' and w.options['lr-gamma'] == 0.2 and w.options.epochs == 200,
     "WRN-28-10 takes Zagoruyko & Komodakis's recipe")
local im = byid['imagenet/resnet50/focal-g2/s3']
t.ok(im and im.options.batch == 256 and im.options.milestones == '30,60' and im.options.epochs == 90,
     'ImageNet ResNet-50: 90 epochs, batch 256, steps at 30 and 60')
local ad = byid['adience/resnet18/crl-a1.5-b1/f3-s1']
t.ok(ad and ad.options.fold == 3 and folds == 50, 'Adience: one run per fold (--fold), 50 in all')
t.ok(byid['cars/resnet50/ce-ls0.1/s1'] and byid['cars/resnet50/ce-ls0.1/s1'].options.dataset == 'cars' and
     byid['cars/resnet50/ce-ls0.1/s1'].options.smoothing == 0.1, 'Stanford Cars as --dataset cars; label smoothing')
t.ok(byid['svhn/wrn-16-8/nllr/s1'] and byid['svhn/wrn-16-8/nllr/s1'].options.extra == true, 'SVHN with extra')

-- bad suite files
local function bad_suite(name, text, pattern, what)
  local path = tmp .. '/' .. name .. '.lua'
  write(path, text)
  t.errors(function() suite.load(path) end, pattern, what)
  local ok, err = pcall(suite.load, path)
  if not ok and not tostring(err):find(path, 1, true) then t.ok(false, what .. ': the message names the file') end
end
local good_ds = "datasets = {{name = 'fashion-mnist', models = {'cnn'}}}"
local good_l = "losses = {{name = 'ce'}}"
bad_suite('noseeds', 'return {name = "x", ' .. good_l .. ', ' .. good_ds .. '}',
          'field seeds must be a non-empty list of seeds', 'a suite without seeds')
bad_suite('nodatasets', 'return {name = "x", seeds = {1}, ' .. good_l .. '}',
          'field datasets must be a non-empty list', 'a suite without datasets')
bad_suite('noname', 'return {seeds = {1}, ' .. good_l .. ', ' .. good_ds .. '}', 'field name must be a name',
          'a suite without a name')
bad_suite('unknownds', "return {name = 'x', seeds = {1}, " .. good_l ..
          ", datasets = {{name = 'cifar11', models = {'cnn'}}}}",
          "datasets[1] (cifar11): unknown dataset 'cifar11' in field name", 'an unknown dataset')
bad_suite('unknownloss', "return {name = 'x', seeds = {1}, losses = {{name = 'ce'}, {name = 'crll'}}, " .. good_ds ..
          '}', "losses[2]: unknown loss 'crll' in field name", 'an unknown loss')
bad_suite('lossparam', "return {name = 'x', seeds = {1}, losses = {{name = 'crl', alhpa = 2}}, " .. good_ds .. '}',
          "losses[1]: field 'alhpa' is not a parameter of crl (alpha, beta)", 'a misspelt loss parameter')
bad_suite('lossvalue', "return {name = 'x', seeds = {1}, losses = {{name = 'crl', alpha = -1}}, " .. good_ds .. '}',
          'losses[1]: ', 'a loss parameter out of its range is refused by the loss')
bad_suite('badopt', "return {name = 'x', seeds = {1}, " .. good_l .. ", options = {epoch = 3}, " .. good_ds .. '}',
          "field options: unknown option 'epoch'", 'an unknown train option')
bad_suite('reserved', "return {name = 'x', seeds = {1}, " .. good_l .. ", options = {seed = 3}, " .. good_ds .. '}',
          "field options: option 'seed' cannot be set here: seeds sets it", 'an option the suite sets itself')
bad_suite('badvalue', "return {name = 'x', seeds = {1}, " .. good_l ..
          ", datasets = {{name = 'fashion-mnist', models = {{name = 'cnn', options = {lr = -1}}}}}}",
          "datasets[1] (fashion-mnist): model cnn, loss ce: train: option --lr must be > 0, got '-1'",
          "a value the trainer refuses, named with its entry")
bad_suite('badtype', "return {name = 'x', seeds = {1}, " .. good_l .. ", options = {epochs = '3'}, " .. good_ds .. '}',
          "option 'epochs' must be a number, got 3", 'an option of the wrong type')
bad_suite('dup', "return {name = 'x', seeds = {1}, losses = {{name = 'crl'}, {name = 'crl', alpha = 1.5}}, " ..
          good_ds .. '}', 'duplicate run id fashion-mnist/cnn/crl-a1.5-b1/s1', 'two losses with one id')
bad_suite('dupseed', "return {name = 'x', seeds = {1, 1}, " .. good_l .. ', ' .. good_ds .. '}',
          'duplicate run id fashion-mnist/cnn/ce/s1', 'a seed twice')
bad_suite('model', "return {name = 'x', seeds = {1}, " .. good_l ..
          ", datasets = {{name = 'fashion-mnist', models = {'resnet21'}}}}",
          "datasets[1] (fashion-mnist): models[1]: unknown model 'resnet21'", 'an unknown model')
bad_suite('field', "return {name = 'x', seed = {1}, " .. good_l .. ', ' .. good_ds .. '}',
          "unknown field 'seed'", 'a misspelt top-level field')
bad_suite('dsfield', "return {name = 'x', seeds = {1}, " .. good_l ..
          ", datasets = {{name = 'fashion-mnist', model = {'cnn'}}}}",
          "datasets[1]: unknown field 'model'", 'a misspelt dataset field')
bad_suite('folds', "return {name = 'x', seeds = {1}, " .. good_l ..
          ", datasets = {{name = 'adience', folds = {0, -1}, models = {'cnn'}}}}",
          'field folds[2] must be an integer >= 0', 'a bad fold')
bad_suite('notable', 'return 42', 'must return a table', 'a file that returns no table')
bad_suite('syntax', 'return {name = ', 'syntax.lua:1:', 'a syntax error')
local out, rc = sh(suite_cmd .. ' plan nosuch')
t.ok(rc == 2 and out:find("no suite 'nosuch'", 1, true) and out:find('smoke', 1, true),
     'an unknown suite name lists the known ones: ' .. out:gsub('\n', ' '))
out, rc = sh(suite_cmd .. ' plan ' .. q(tmp .. '/dup.lua'))
t.ok(rc == 2 and out:find('duplicate run id', 1, true) and not out:find('traceback'),
     'the CLI prints a bad suite\'s message alone, exit 2')

---------------------------------------------------------------------------
-- the smoke suite, its runner killed with its whole process group mid-way

local function state_of(s, i) return suite.state(s.runs[i]) end

-- Starts the runner in a session of its own; returns its pid (= its
-- process group) and the file its output goes to.
local function start_runner(args, name)
  local log, pidf = tmp .. '/' .. name .. '.log', tmp .. '/' .. name .. '.pid'
  os.execute('setsid sh -c ' .. q('echo $$ > ' .. q(pidf) .. '; exec ' .. suite_cmd .. ' ' .. args) .. ' > ' ..
             q(log) .. ' 2>&1 &')
  for _ = 1, 200 do
    local p = tonumber(read(pidf) or '')
    if p then return p, log end
    sleep(0.05)
  end
  error('the runner did not start')
end

-- Waits until cond() holds (polling), at most secs seconds.
local function wait_for(cond, secs)
  local deadline = os.time() + secs
  while os.time() <= deadline do
    if cond() then return true end
    sleep(0.02)
  end
  return false
end

local function epochs_once(s, i)
  local seen = {}
  for _, r in ipairs(suite.metrics(s.runs[i])) do
    if seen[r.epoch] then return false end
    seen[r.epoch] = true
  end
  for e = 1, s.runs[i].options.epochs do if not seen[e] then return false end end
  return true
end

local FILES = {'checkpoint.safetensors', 'best.safetensors', 'metrics.jsonl', 'metrics.csv', 'train.log'}
local function snapshot(run)
  local snap = {}
  for _, f in ipairs(FILES) do snap[f] = {read(run.dir .. '/' .. f), mtime(run.dir .. '/' .. f)} end
  return snap
end
local function untouched(run, snap)
  for _, f in ipairs(FILES) do
    local now = {read(run.dir .. '/' .. f), mtime(run.dir .. '/' .. f)}
    if now[1] ~= snap[f][1] or now[2] ~= snap[f][2] then return false, f end
  end
  return true
end

local s1 = suite.load(suite.resolve('smoke'), {out = tmp .. '/kill-group'})
local pid = start_runner('run smoke --out ' .. q(s1.out), 'kill-group')
local mid = wait_for(function()
  return state_of(s1, 1).state == 'done' and state_of(s1, 2).epoch >= 1
end, 120)
os.execute('kill -9 -' .. pid)
t.ok(mid, 'the runner got half-way: run 1 done, run 2 past its first epoch')
local done_before, snaps = {}, {}
sleep(0.3)
for i, r in ipairs(s1.runs) do
  if state_of(s1, i).state == 'done' then
    done_before[#done_before + 1] = i
    snaps[i] = snapshot(r)
  end
end
local any_running = false
for i = 1, #s1.runs do any_running = any_running or suite.locked(s1.runs[i]) end
t.ok(not any_running, 'kill -9 of the process group ended the trainers too: no run is locked')
local partial = state_of(s1, 2)
t.ok(partial.state == 'partial' or partial.state == 'done', 'run 2 is left partial (or done): ' ..
     suite.describe(partial))
out, rc = sh(suite_cmd .. ' status smoke --out ' .. q(s1.out))
t.ok(rc == 0 and out:find('fashion%-mnist/cnn/ce/s1%s+done %(3 epochs%)') and
     (out:find('fashion%-mnist/cnn/ce/s2%s+partial %(epoch %d of 3%)') or partial.state == 'done') and
     out:find('crl%-a1%.5%-b1/s2%s+pending'), 'status: done, partial (epoch k of N), pending: ' .. out:gsub('\n', ' | '))
out, rc = sh(suite_cmd .. ' run smoke --out ' .. q(s1.out))
t.ok(rc == 0 and out:find('4 of 4 runs done', 1, true), 'the rerun completes the suite: ' ..
     (out:match('suite smoke: 4 of[^\n]*') or out))
local all_once = true
for i = 1, #s1.runs do all_once = all_once and epochs_once(s1, i) end
t.ok(all_once, "every run's metrics.jsonl holds each of its epochs exactly once")
local same = #done_before > 0
for _, i in ipairs(done_before) do
  local ok, f = untouched(s1.runs[i], snaps[i])
  if not ok then
    same = false
    t.diag('run ' .. i .. ': ' .. f .. ' changed')
  end
end
t.ok(same, string.format('the %d runs done before the kill were not touched (files, contents and mtimes)',
                         #done_before))
if partial.state == 'partial' and partial.epoch > 0 then
  local log2 = read(s1.runs[2].dir .. '/train.log') or ''
  t.ok(log2:find('resuming at epoch ' .. (partial.epoch + 1), 1, true) ~= nil,
       'the partial run resumed from its checkpoint (epoch ' .. (partial.epoch + 1) .. ')')
else
  t.skip('run 2 finished before the kill landed')
end
local before = snapshot(s1.runs[4])
out, rc = sh(suite_cmd .. ' run smoke --out ' .. q(s1.out))
t.ok(rc == 0 and out:find('0 trained now, 4 were done before', 1, true) and untouched(s1.runs[4], before),
     'a third run trains nothing and touches nothing')

---------------------------------------------------------------------------
-- the runner alone killed: its trainer lives on; the rerun must not start
-- a second one on that folder, and takes the run up when it has ended

local s2 = suite.load(suite.resolve('smoke'), {out = tmp .. '/kill-runner'})
pid = start_runner('run smoke --out ' .. q(s2.out), 'kill-runner')
mid = wait_for(function() return state_of(s2, 1).state == 'done' and suite.locked(s2.runs[2]) end, 120)
os.execute('kill -9 ' .. pid)
t.ok(mid and suite.locked(s2.runs[2]), "the runner alone was killed while run 2's trainer runs; it still holds " ..
     'the lock')
out, rc = sh(suite_cmd .. ' run smoke --out ' .. q(s2.out))
t.ok(rc == 0 and out:find('fashion-mnist/cnn/ce/s2: another process is training it', 1, true) and
     out:find('4 of 4 runs done', 1, true), 'the rerun waits for the orphaned trainer instead of starting another: ' ..
     (out:match('[^\n]*another process[^\n]*') or out))
local log2 = read(s2.runs[2].dir .. '/train.log') or ''
local starts = select(2, log2:gsub('\ntraining: ', '')) + (log2:find('^training: ') and 1 or 0) +
               select(2, log2:gsub('resuming at epoch', ''))
t.eq(starts, 1, 'one trainer only ever worked on run 2 (one start in its train.log)')
all_once = true
for i = 1, #s2.runs do all_once = all_once and epochs_once(s2, i) end
t.ok(all_once, 'each epoch once in every run')

---------------------------------------------------------------------------
-- a failing run is recorded while the others finish; run-one's statuses;
-- an edited suite is refused on resume

local tiny = "options = {epochs = 2, batch = 32, ['train-limit'] = 128, ['test-limit'] = 100, workers = 1}"
local fail_file = tmp .. '/failing.lua'
write(fail_file, "return {name = 'failing', seeds = {1}, losses = {{name = 'ce'}}, " .. tiny .. [[,
  datasets = {
    {name = 'broken', dataset = 'fashion-mnist', options = {data = ']] .. tmp .. [[/no-such-folder'}, models = {'cnn'}},
    {name = 'fashion-mnist', models = {'cnn'}},
  }}
]])
local sf = suite.load(fail_file, {out = tmp .. '/failing'})
out, rc = sh(suite_cmd .. ' run ' .. q(fail_file) .. ' --out ' .. q(sf.out))
t.ok(rc == 1 and out:find('broken/cnn/ce/s1: FAILED (exit 1)', 1, true) and out:find('1 of 2 runs done', 1, true),
     'a failing run is reported and the runner exits 1: ' .. (out:match('[^\n]*FAILED[^\n]*') or out))
t.eq(state_of(sf, 2).state, 'done', 'the run after it still ran to the end')
local rec = json.decode(read(sf.runs[1].dir .. '/failed.json') or 'null')
t.ok(rec and rec.exit_code == 1 and tostring(rec.error):find('no-such-folder', 1, true) ~= nil,
     "failed.json records the exit status and the trainer's stderr: " .. tostring(rec and rec.error):sub(1, 120))
out, rc = sh(suite_cmd .. ' status ' .. q(fail_file) .. ' --out ' .. q(sf.out))
t.ok(out:find('broken/cnn/ce/s1%s+failed %(exit 1%): [^\n]*no%-such%-folder') ~= nil,
     'status shows the failure and the first line of its error: ' .. (out:match('[^\n]*failed[^\n]*') or out))
out, rc = sh(suite_cmd .. ' run-one ' .. q(fail_file) .. ' 1 --out ' .. q(sf.out))
t.eq(rc, 1, 'run-one of a failing run exits 1 (a later run retries a failed run)')
out, rc = sh(suite_cmd .. ' run-one ' .. q(fail_file) .. ' 3 --out ' .. q(sf.out))
t.ok(rc == 2 and out:find('INDEX in 1..2', 1, true), 'run-one refuses an index outside the suite')

-- run-one: 75 while epochs are left after --stop-after, then 0, then 0 touching nothing
local r2 = sf.runs[2]
out, rc = sh('rm -rf ' .. q(r2.dir) .. ' && ' .. suite_cmd .. ' run-one ' .. q(fail_file) .. ' 2 --out ' .. q(sf.out) ..
             ' --stop-after 1')
t.ok(rc == 75 and suite.state(r2).state == 'partial' and suite.state(r2).epoch == 1,
     'run-one --stop-after 1 exits 75 with epochs left: ' .. out:gsub('\n', ' | '))
-- the suite edited between two invocations: the resume is refused, and said so
local edited = tmp .. '/failing-edited.lua'
write(edited, (read(fail_file):gsub("batch = 32", "batch = 32, lr = 0.2")))
local se = suite.load(edited, {out = sf.out})
out, rc = sh(suite_cmd .. ' run-one ' .. q(edited) .. ' 2 --out ' .. q(sf.out))
t.ok(rc == 1 and out:find('differ from those it was started with (was the suite file edited?)', 1, true) and
     out:find("--lr 0.2 differs from the saved run's 0.1", 1, true),
     'an edited suite: the resume is refused, naming the option: ' .. (out:match('[^\n]*differ[^\n]*') or out))
t.eq(suite.state(se.runs[2]).state, 'failed', 'and the run is recorded as failed')
out, rc = sh(suite_cmd .. ' run-one ' .. q(fail_file) .. ' 2 --out ' .. q(sf.out))
t.ok(rc == 0 and suite.state(r2).state == 'done' and epochs_once(sf, 2) and
     read(r2.dir .. '/failed.json') == nil, 'with the file restored, run-one finishes it (exit 0) and clears the ' ..
     'failure record')
local snap = snapshot(r2)
out, rc = sh(suite_cmd .. ' run-one ' .. q(fail_file) .. ' 2 --out ' .. q(sf.out))
t.ok(rc == 0 and untouched(r2, snap), 'run-one of a finished run exits 0 and touches nothing')

-- a damaged checkpoint is shown as such (the trainer refuses it when the run resumes)
os.execute('mkdir -p ' .. q(fm.runs[1].dir))
write(fm.runs[1].dir .. '/checkpoint.safetensors', 'garbage')
t.ok(suite.describe(suite.state(fm.runs[1])):find('^pending %(its checkpoint does not read: checkpoint: ') ~= nil,
     'status names a checkpoint that does not read: ' .. suite.describe(suite.state(fm.runs[1])))

---------------------------------------------------------------------------
-- --jobs 2: two trainers at once, the threads split between them

local sj = suite.load(suite.resolve('smoke'), {out = tmp .. '/jobs'})
out, rc = sh(suite_cmd .. ' run smoke --out ' .. q(sj.out) .. ' --jobs 2 --threads 2 --only s1')
local first_done = out:find(': done', 1, true) or #out
local s1_start = out:find('ce/s1: starting %(3 epochs%), pid %d+, 1 threads')
local s2_start = out:find('crl%-a1%.5%-b1/s1: starting %(3 epochs%), pid %d+, 1 threads')
t.ok(rc == 0 and s1_start and s2_start and s1_start < first_done and s2_start < first_done and
     out:find('2 of 2 runs done', 1, true), '--jobs 2 --threads 2: both runs start before either ends, 1 thread each')

-- --devices: each job's command names its GPU (no GPU here: the command is checked, not run)
local gcmd = suite.command(sj.runs[1], {threads = 4, device = '1'}, true)
t.ok(gcmd:find("^CUDA_VISIBLE_DEVICES='1' exec ") and gcmd:find('--device=cuda', 1, true) and
     gcmd:find('--threads=4', 1, true) and gcmd:find('--resume', 1, true),
     'a job on GPU 1: CUDA_VISIBLE_DEVICES=1 and --device cuda: ' .. gcmd:sub(1, 60))
out, rc = sh(suite_cmd .. ' run smoke --out ' .. q(sj.out) .. ' --devices a,b')
t.ok(rc == 2 and out:find('--devices takes GPU numbers like 0,1', 1, true), '--devices refuses what is not a GPU number')

---------------------------------------------------------------------------
-- plan: the cost and the estimate from the finished runs

out, rc = sh(suite_cmd .. ' plan smoke --out ' .. q(s1.out))
t.ok(rc == 0 and out:find('image-epochs 1536, left 0', 1, true) and
     out:find('total: 6144 training image-epochs, 0 left', 1, true), 'plan: image-epochs per run and in all')
out, rc = sh(suite_cmd .. ' plan smoke --out ' .. q(sj.out))
t.ok(rc == 0 and out:find('fashion%-mnist/cnn/ce/s2%s+pending%s+image%-epochs 1536, left 1536, ~%d+s') and
     not out:find('not estimated', 1, true), 'plan estimates the pending runs from the finished ones: ' ..
     (out:match('[^\n]*ce/s2[^\n]*') or out))

---------------------------------------------------------------------------
-- the report, recomputed here from the metrics files

out, rc = sh(suite_cmd .. ' report smoke --out ' .. q(s1.out))
t.ok(rc == 0, 'report runs: ' .. out:sub(1, 200))
local rj = json.decode(read(s1.out .. '/report.json') or 'null')
t.ok(rj and #rj.groups == 1 and #rj.groups[1].losses == 2, 'report.json: one dataset x model, two losses')
local function finals(loss_id)
  local fin, best, ece = {}, {}, {}
  for _, r in ipairs(s1.runs) do
    if r.loss.id == loss_id then
      local lines = {}
      for line in io.lines(r.dir .. '/metrics.jsonl') do lines[#lines + 1] = json.decode(line) end
      fin[#fin + 1], ece[#ece + 1] = lines[#lines].test_acc, lines[#lines].test_ece
      local b = -1
      for _, l in ipairs(lines) do b = math.max(b, l.test_acc) end
      best[#best + 1] = b
    end
  end
  return fin, best, ece
end
local function mean(xs) return (xs[1] + xs[2]) / 2 end
local function sd(xs) local m = mean(xs) return math.sqrt((xs[1] - m) ^ 2 + (xs[2] - m) ^ 2) end -- n - 1 = 1
local ce_f, ce_b, ce_e = finals('ce')
local crl_f, crl_b, crl_e = finals('crl-a1.5-b1')
local L = rj.groups[1].losses
-- report.json holds 10 significant digits
local function near(a, b) return type(a) == 'number' and math.abs(a - b) <= 1e-9 * math.max(math.abs(b), 1e-3) end
t.ok(L[1].id == 'ce' and near(L[1].mean.final_acc, mean(ce_f)) and near(L[1].std.final_acc, sd(ce_f)) and
     near(L[1].mean.best_acc, mean(ce_b)) and near(L[1].mean.final_ece, mean(ce_e)) and
     near(L[2].std.best_acc, sd(crl_b)) and near(L[2].mean.final_ece, mean(crl_e)),
     'the mean and std of final and best top-1 and ECE')
-- Welch, written out for two samples of two
local va, vb = sd(crl_f) ^ 2 / 2, sd(ce_f) ^ 2 / 2
local tt = (mean(crl_f) - mean(ce_f)) / math.sqrt(va + vb)
local df = (va + vb) ^ 2 / (va ^ 2 + vb ^ 2)
local w2 = L[2].vs_ce.final_acc
t.ok(near(w2.diff, mean(crl_f) - mean(ce_f)) and near(w2.t, tt) and near(w2.df, df) and
     near(w2.p, stats.t_two_sided(tt, df)),
     string.format("CRL - CE: difference %.4f, Welch t %.4f, df %.3f, p %.4f", w2.diff, w2.t, w2.df, w2.p))
t.ok(out:find(string.format('| CRL(1.5, 1) | 2 | %.2f ± %.2f |', 100 * mean(crl_f), 100 * sd(crl_f)), 1, true) and
     out:find(string.format('%+.2f | %.3g |', 100 * w2.diff, w2.p), 1, true),
     'the printed Markdown shows mean ± std and the difference and p-value')
-- the suite's epochs lowered after its runs finished (3 -> 2): the report's "final" is epoch 2, as its heading says
do
  local smoke_text = read(suite.resolve('smoke'))
  local two = tmp .. '/smoke-two-epochs.lua'
  write(two, (smoke_text:gsub('epochs = 3', 'epochs = 2')))
  local s2e = suite.load(two, {out = s1.out})
  local rep2 = require('crlab.report').build(s2e, s2e.runs)
  local at2 = {}
  for _, r in ipairs(s1.runs) do
    if r.loss.id == 'ce' then
      for line in io.lines(r.dir .. '/metrics.jsonl') do
        local rec = json.decode(line)
        if rec.epoch == 2 then at2[#at2 + 1] = rec.test_acc end
      end
    end
  end
  local ce2 = rep2.groups[1].by_loss.ce
  t.ok(#rep2.missing == 0 and ce2.n == 2 and #at2 == 2 and near(ce2.mean.final_acc, mean(at2)) and
       #ce2.curves[1] == 2, string.format('with the epochs lowered to 2, final top-1 is epoch 2\'s (%.4f, epoch 2: %.4f)',
                                          ce2.mean.final_acc, mean(at2)))
end
local csv = read(s1.out .. '/report.csv') or ''
t.ok(csv:find('\nfashion-mnist,cnn,crl-a1.5-b1,"CRL(1.5, 1)",2,' .. string.format('%.10g', mean(crl_f)), 1, true) ~= nil,
     'report.csv holds the same numbers')
local md = read(s1.out .. '/report.md') or ''
t.ok(md:find('| CE | 2 |', 1, true) ~= nil, 'report.md is written')
if require('crlab.plot').available() then
  local pngs = 0
  for _, f in ipairs({'test_acc', 'train_loss', 'reliability-ce', 'reliability-crl-a1.5-b1'}) do
    local png = read(s1.out .. '/plots/fashion-mnist-cnn-' .. f .. '.png') or ''
    if png:sub(1, 8) == '\137PNG\r\n\26\n' then pngs = pngs + 1 end
  end
  t.eq(pngs, 4, 'curves (accuracy, training loss) and a reliability diagram per loss, as PNG')
else
  t.skip('gnuplot is not installed')
end
t.errors(function()
  require('crlab.plot').lines{terminal = true, series = {{name = 'a', x = {1, 2}, y = {1, 2}, lo = {0}, hi = {2, 3}}}}
end, 'crlab.plot: series a: a band needs lo and hi, each with 2 values', 'a band of the wrong length is refused')
-- one seed: no spread, no test; the partial report goes beside the whole one, not over it
local whole_md = read(s1.out .. '/report.md')
out, rc = sh(suite_cmd .. ' report smoke --out ' .. q(s1.out) .. ' --only s1')
t.ok(rc == 0 and out:find('| CE | 1 | %d+%.%d+ ± n/a |') and out:find('| n/a |', 1, true),
     'with one run per loss, std and p are n/a: ' .. (out:match('[^\n]*CRL[^\n]*') or out))
t.ok(whole_md ~= nil and read(s1.out .. '/report.md') == whole_md and
     (read(s1.out .. '/reports/only-s1/report.md') or ''):find('± n/a', 1, true),
     'report --only writes to reports/only-PATTERN/ and leaves the suite\'s report as it was')

-- a folder with no finished run (a mistyped --out, a suite not run yet): refused, nothing written or made
do
  local empty = tmp .. '/no-such-suite-folder'
  out, rc = sh(suite_cmd .. ' report smoke --out ' .. q(empty))
  t.ok(rc == 1 and out:find('no run of', 1, true) and out:find(empty, 1, true) and not read(empty .. '/report.md')
       and os.execute('test -e ' .. q(empty)) ~= 0,
       'report with no finished run fails naming the folder, and writes nothing: ' .. out:sub(1, 300))
end

-- an option the command does not read is refused, not ignored (slurm --only would have written every run)
for _, c in ipairs({{'slurm smoke --only s1', 'slurm does not take --only', 'sbatch --array='},
                    {'plan smoke --jobs 2', 'plan does not take --jobs (it takes --only, --out)'},
                    {'run-one smoke 1 --only s1', 'run-one does not take --only'}}) do
  out, rc = sh(suite_cmd .. ' ' .. c[1] .. ' --out ' .. q(tmp .. '/unused-options'))
  t.ok(rc == 2 and out:find(c[2], 1, true) and (not c[3] or out:find(c[3], 1, true)) and
       os.execute('test -e ' .. q(tmp .. '/unused-options')) ~= 0, c[1] .. ': refused: ' .. out:sub(1, 200))
end

-- a time limit no longer than the default signal lead: the message names the option that changes the lead (no
-- Lua file:line), and --requeue-before sets it
out, rc = sh(suite_cmd .. ' slurm smoke --time 2:00 --out ' .. q(tmp .. '/short-slurm'))
t.ok(rc == 1 and out:find('--requeue-before', 1, true) and not out:find('%.lua:%d+:') and
     not read(tmp .. '/short-slurm/slurm.sh'), 'slurm --time 2:00 is refused naming --requeue-before: ' .. out:sub(1, 300))
out, rc = sh(suite_cmd .. ' slurm smoke --time 2:00 --requeue-before 30 --out ' .. q(tmp .. '/short-slurm'))
t.ok(rc == 0 and (read(tmp .. '/short-slurm/slurm.sh') or ''):find('--signal=B:USR1@30', 1, true),
     'slurm --requeue-before 30 sets the signal lead: ' .. out:sub(1, 200))

---------------------------------------------------------------------------
-- Slurm: the call to crlab.slurm (its arguments through a stand-in; test_slurm runs the real one)

local real_ok = pcall(require, 'crlab.slurm')
local got
package.loaded['crlab.slurm'] = {script = function(o)
  got = o
  return '#!/bin/sh\n# stub\n' .. o.command .. '\n'
end}
local path = suite.slurm(s1, {time = '01:00:00', cpus = 4, gpus = 1, partition = 'gpu', stop_after = 10})
t.ok(got and got.array_size == 4 and got.job_name == 'crlab-smoke' and got.time == '01:00:00' and
     got.cpus_per_task == 4 and got.gpus == 1 and got.partition == 'gpu' and got.workdir:sub(1, 1) == '/' and
     got.log_dir:sub(-11) == '/slurm-logs', 'suite.slurm passes the array size and the limits to crlab.slurm.script')
t.ok(got and got.command:find("run%-one '[^']*smoke%.lua' \"%$SLURM_ARRAY_TASK_ID\"") and
     got.command:find('--stop-after=10', 1, true) and got.command:find('--device=cuda', 1, true) and
     got.command:find('--threads=4', 1, true), 'each array task is run-one of its index: ' .. tostring(got and
     got.command))
t.ok(path == s1.out .. '/slurm.sh' and (read(path) or ''):find('$SLURM_ARRAY_TASK_ID', 1, true),
     'the script is written to the suite folder')
package.loaded['crlab.slurm'] = nil
if real_ok then
  local _, text = suite.slurm(s1, {time = '01:00:00'})
  t.ok(text:find('run-one', 1, true) and text:find('1-4', 1, true), 'with the real crlab.slurm: an array of 4 tasks')
else
  t.ok(false, 'crlab.slurm loads: ' .. tostring(select(2, pcall(require, 'crlab.slurm'))))
end

os.execute('rm -rf ' .. q(tmp))
t.done()
