-- scripts/suite.lua -- a suite of training runs (scripts/suites/*.lua) as a
-- resumable queue:
--   crlab scripts/suite.lua plan|run|status|report SUITE [--only PATTERN] [--jobs N] [--threads N]
--                                                       [--devices LIST] [--out DIR]
--   crlab scripts/suite.lua run-one SUITE INDEX [--stop-after N] [--out DIR]
--   crlab scripts/suite.lua slurm SUITE [--time HH:MM:SS] [--cpus N] [--gpus N] [--partition P]
--                                       [--stop-after N] [--out DIR]
-- SUITE is a file or the name of one in scripts/suites/. The suite format
-- and the run states are described in lua/crlab/suite.lua, the commands in
-- README.md ("Suites").
local suite = require 'crlab.suite'

local usage = [[
usage: crlab scripts/suite.lua COMMAND SUITE [options]
  plan      every run (index, id, folder, state), its options, and the estimated cost
  run       run the runs not done, resuming partial ones (a resumable queue)
  status    each run's state: pending, partial (epoch k of N), running, done, failed
  report    mean +- std over seeds per dataset x model x loss, differences to CE with Welch's
            t-test, Markdown/CSV/JSON and plots in the suite's folder
  run-one SUITE INDEX   run or resume the INDEX-th run (1-based, the order of plan); exit 0 when it
            is done, 75 when --stop-after stopped it with epochs left, 1 when it failed
  slurm     write a Slurm job-array script (one task per run, run-one each) and print how to submit it
options:
  --only PATTERN   only the runs whose id contains PATTERN (* any characters, ? one; a,b for either)
  --jobs N         runs at once (default 1, or one per device of --devices)
  --threads N      CPU threads shared between the jobs (default: all cores)
  --devices LIST   GPUs, e.g. 0,1: each job trains on one (CUDA_VISIBLE_DEVICES, --device cuda)
  --out DIR        the suite's folder (default runs/suites/NAME)
  --stop-after N   run-one, slurm: stop a run after N epochs of one invocation (then resumed)
  --device cuda    run-one: train on the GPU the environment gives (CUDA_VISIBLE_DEVICES, as Slurm sets it)
  --time, --cpus, --gpus, --partition   slurm: the job array's limits
  --requeue-before S   slurm: ask for SIGUSR1 S seconds before --time, to requeue the task (default 120; 0: none)]]

local function fail(msg, code)
  io.stderr:write(msg, '\n')
  os.exit(code or 2, true)
end

local cmd = arg[1]
if cmd == nil or cmd == '-h' or cmd == '--help' then
  print(usage)
  os.exit(cmd and 0 or 2, true)
end
local commands = {plan = true, run = true, status = true, report = true, ['run-one'] = true, slurm = true}
if not commands[cmd] then fail("suite: unknown command '" .. cmd .. "'\n" .. usage) end
local file = arg[2]
if file == nil then fail('suite: ' .. cmd .. ' needs a SUITE (a file, or a name in scripts/suites/)') end
local positional, opts = {}, {}
local valued = {only = true, jobs = true, threads = true, devices = true, out = true, ['stop-after'] = true,
                time = true, cpus = true, gpus = true, partition = true, device = true, ['requeue-before'] = true}
local i = 3
while i <= #arg do
  local a = arg[i]
  local key, inline = a:match('^%-%-([%w%-]+)=(.*)$')
  key = key or a:match('^%-%-([%w%-]+)$')
  if key then
    if not valued[key] then fail("suite: unknown option '--" .. key .. "' (see --help)") end
    local v = inline or arg[i + 1]
    if v == nil or (not inline and v:match('^%-%-')) then fail('suite: option --' .. key .. ' needs a value') end
    opts[key] = v
    i = i + (inline and 1 or 2)
  else
    positional[#positional + 1] = a
    i = i + 1
  end
end
-- the options each command reads: any other is refused rather than ignored
local takes = {plan = {'only', 'out'}, status = {'only', 'out'}, report = {'only', 'out'},
               run = {'only', 'jobs', 'threads', 'devices', 'out'}, ['run-one'] = {'stop-after', 'device', 'threads', 'out'},
               slurm = {'time', 'cpus', 'gpus', 'partition', 'stop-after', 'requeue-before', 'out'}}
for key in pairs(opts) do
  local ok = false
  for _, k in ipairs(takes[cmd]) do ok = ok or k == key end
  if not ok then
    fail(string.format('suite: %s does not take --%s (it takes --%s)%s', cmd, key, table.concat(takes[cmd], ', --'),
                       cmd == 'slurm' and key == 'only' and '; the array holds every run: submit some of them with ' ..
                       'sbatch --array=INDEXES (the indexes of plan --only)' or ''))
  end
end
if #positional > (cmd == 'run-one' and 1 or 0) then
  fail("suite: unexpected argument '" .. positional[#positional] .. "'")
end

local function int_opt(key, min)
  local v = opts[key]
  if v == nil then return nil end
  local n = tonumber(v)
  if not n or n % 1 ~= 0 or n < min then fail(string.format("suite: --%s must be an integer >= %d, got '%s'", key,
                                                           min, v)) end
  return n
end

local ok, s = pcall(function() return suite.load(suite.resolve(file), {out = opts.out}) end)
if not ok then fail(tostring(s)) end

if cmd == 'run-one' then
  local idx = tonumber(positional[1])
  if not idx or idx % 1 ~= 0 or idx < 1 or idx > #s.runs then
    fail(string.format("suite: run-one needs an INDEX in 1..%d (the runs of %s), got '%s'", #s.runs, s.file,
                       tostring(positional[1])))
  end
  if opts.device and opts.device ~= 'cpu' and opts.device ~= 'cuda' then
    fail("suite: --device must be cpu or cuda, got '" .. opts.device .. "'")
  end
  local state = suite.run_one(s.runs[idx], {stop_after = int_opt('stop-after', 1),
                                             slot = {threads = int_opt('threads', 1), cuda = opts.device == 'cuda'}})
  os.exit(state == 'done' and 0 or state == 'stopped' and suite.EXIT_STOPPED or 1, true)
end

local runs = suite.select(s, opts.only)
if #runs == 0 then fail(string.format("suite: no run of %s matches --only '%s'", s.file, opts.only)) end

if cmd == 'plan' then
  local p = suite.plan(s, runs)
  io.write(suite.format_plan(s, p))
elseif cmd == 'status' then
  io.write(suite.format_status(s, runs))
elseif cmd == 'run' then
  local devices
  if opts.devices then
    devices = {}
    for d in opts.devices:gmatch('[^,%s]+') do
      if not d:match('^%d+$') then fail("suite: --devices takes GPU numbers like 0,1, got '" .. opts.devices .. "'") end
      devices[#devices + 1] = d
    end
    if #devices == 0 then fail('suite: --devices names no GPU') end
  end
  local ropts = {jobs = int_opt('jobs', 1), threads = int_opt('threads', 1), devices = devices}
  local t0 = os.time()
  print(string.format('suite %s: %d runs in %s', s.name, #runs, s.out))
  local rok, counts, failed = pcall(suite.run, runs, ropts)
  if not rok then fail('suite: ' .. tostring(counts):gsub('^suite: ', ''), 1) end
  print(string.format('suite %s: %d of %d runs done (%d trained now, %d were done before), %d failed, %d s', s.name,
                      counts.done, #runs, counts.done - counts.skipped, counts.skipped, counts.failed,
                      os.time() - t0))
  for _, f in ipairs(failed) do
    print(string.format('  failed: %s (%s): %s  [details: %s/failed.json, %s/stderr.log]', f.run.id,
                        f.result.status, f.result.error:match('[^\n]*'), f.run.dir, f.run.dir))
  end
  os.exit(counts.failed == 0 and 0 or 1, true)
elseif cmd == 'report' then
  local rep = require 'crlab.report'
  local bok, r = pcall(rep.build, s, runs)
  if not bok then fail(tostring(r), 1) end
  -- nothing to report (a mistyped --out, a suite not run yet): say so, and make no folder or empty files
  if #r.missing == #runs then
    fail(string.format('suite: report: no run of %s is finished in %s (%d selected: %s); nothing written', s.file,
                       s.out, #runs, suite.format_status(s, runs):match('^[^\n]*: ([^\n]*)')), 1)
  end
  -- a report of some runs goes beside the whole suite's, not over it
  local dir = opts.only and s.out .. '/reports/only-' .. opts.only:gsub('[^%w%-%.]+', '_') or nil
  local rok, text = pcall(rep.write, s, r, dir)
  if not rok then fail(tostring(text), 1) end
  io.write(text)
elseif cmd == 'slurm' then
  local sok, path = pcall(suite.slurm, s, {time = opts.time, cpus = int_opt('cpus', 1), gpus = int_opt('gpus', 0),
                                           partition = opts.partition, stop_after = int_opt('stop-after', 1),
                                           requeue_before = int_opt('requeue-before', 0)})
  if not sok then fail(tostring(path), 1) end
  print(string.format('wrote %s (%d array tasks, one per run of %s); submit it with:\n  sbatch %s', path, #s.runs,
                      s.file, path))
end
