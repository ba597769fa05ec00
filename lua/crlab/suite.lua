-- crlab.suite: a suite of training runs (datasets x architectures x
-- losses x seeds, x folds where a dataset has them) as a resumable queue,
-- behind scripts/suite.lua.
--
-- A suite is a Lua file returning a table (scripts/suites/*.lua):
--
--   return {
--     name = 'smoke',                                -- results go to runs/suites/smoke (--out overrides)
--     seeds = {1, 2},
--     losses = {{name = 'ce'}, {name = 'crl', alpha = 1.5, beta = 1}},
--     options = {epochs = 2, lr = 0.05},            -- scripts/train.lua options for every run
--     datasets = {
--       {name = 'fashion-mnist', options = {...},   -- name: the run ids' first part and --dataset
--        models = {'cnn', {name = 'resnet20', options = {...}}}},
--       {name = 'adience', folds = {0, 1, 2, 3, 4}, models = {...}},   -- one run per fold
--     },
--   }
--
-- A dataset entry may also give dataset = 'NAME' (the --dataset, when its
-- name is another, e.g. two entries of one dataset), and its own seeds and
-- losses. A loss is {name = 'ce' | 'nllr' | 'crl' | 'focal'} with its
-- parameters (crl: alpha, beta; focal: gamma; ce: smoothing), which become
-- the trainer's --loss, --alpha, ...; id = and label = name it otherwise
-- than the defaults (crl-a1.5-b1, 'CRL(1.5, 1)'). Options are train.lua's,
-- spelt as on its command line without the dashes (['weight-decay'] =
-- 1e-4, nesterov = true); a model's options override its dataset's, which
-- override the suite's. The suite sets --dataset, --model, --loss and its
-- parameters, --seed, --fold, --out and --resume itself; the runner sets
-- --threads and --device.
--
-- Every run has a stable id, DATASET/MODEL/LOSS/sSEED (fFOLD-sSEED with
-- folds), its folder OUT/ID, and a 1-based index in the suite's order
-- (datasets, models, losses, folds, seeds), which scripts/suite.lua run-one
-- takes. A run's state is read from its folder: its checkpoint's epoch
-- against the suite's epochs, a lock held by a live trainer, a failure
-- record.
local ffi = require 'ffi'
local train = require 'crlab.train'
local data = require 'crlab.data'
local models = require 'crlab.models'
local loss = require 'crlab.loss'
local json = require 'crlab.json'
local ckpt = require 'crlab.checkpoint'

local M = {}

---------------------------------------------------------------------------
-- the suite file

-- Options a suite may not set: the suite and the runner set them.
local RESERVED = {dataset = 'the dataset entry sets it (name or dataset)', model = 'models sets it',
                  loss = 'losses set it', alpha = 'losses set it', beta = 'losses set it', gamma = 'losses set it',
                  smoothing = 'losses set it', seed = 'seeds sets it', out = 'the runner sets it (--out)',
                  resume = 'the runner sets it', ['stop-after'] = 'run-one --stop-after sets it',
                  threads = 'the runner sets it (--threads, --jobs)', device = 'the runner sets it (--devices)',
                  override = 'a suite never overrides the options a run was started with',
                  help = 'not an option of a run'}
local TOP_FIELDS = {name = true, seeds = true, losses = true, options = true, datasets = true, out = true}
local DATASET_FIELDS = {name = true, dataset = true, options = true, models = true, folds = true, seeds = true,
                        losses = true}

-- The exit status of scripts/suite.lua run-one when a run stopped early
-- (--stop-after) with epochs left: EX_TEMPFAIL, on which the job-array
-- script crlab.slurm writes requeues the task (defined there, once).
M.EXIT_STOPPED = require('crlab.slurm').EXIT_STOPPED

local function fmt_num(v)
  for _, f in ipairs({'%.15g', '%.17g'}) do
    local s = string.format(f, v)
    if tonumber(s) == v then return s end
  end
end

-- Where a suite named on the command line lives: a path, or NAME for
-- scripts/suites/NAME.lua in the checkout.
function M.resolve(name)
  local f = io.open(name, 'r')
  if f then
    f:close()
    return name
  end
  local home = os.getenv('CRLAB_HOME') or '.'
  local path = home .. '/scripts/suites/' .. name .. '.lua'
  f = io.open(path, 'r')
  if f then
    f:close()
    return path
  end
  local known = {}
  local p = io.popen("ls '" .. home .. "/scripts/suites' 2>/dev/null")
  for l in p:lines() do known[#known + 1] = l:match('^(.*)%.lua$') end
  p:close()
  error(string.format("suite: no suite '%s' (neither a file nor %s; suites there: %s)", name, path,
                      table.concat(known, ', ')), 0)
end

-- A loss entry's id and label, and its train.lua options.
local function loss_entry(file, where, l)
  local function bad(msg) error(string.format('suite %s: %s: %s', file, where, msg), 0) end
  if type(l) ~= 'table' then bad('a loss is a table like {name = \'crl\', alpha = 1.5, beta = 1}, got ' .. type(l)) end
  -- the parameters it takes (train.lua options of the same names), as crlab.loss defines them
  local known_loss, base_loss = pcall(loss.byName, l.name)
  if not known_loss then
    bad(string.format("unknown loss '%s' in field name (ce, nllr, crl, focal)", tostring(l.name)))
  end
  local params = base_loss.param_names
  local allowed = {name = true, id = true, label = true}
  for _, p in ipairs(params) do allowed[p] = true end
  for k in pairs(l) do
    if not allowed[k] then
      bad(string.format("field '%s' is not a parameter of %s (%s)", tostring(k), l.name,
                        #params > 0 and table.concat(params, ', ') or 'it takes none'))
    end
  end
  local defaults = train.defaults()
  local opts, id, args = {loss = l.name}, l.name, {}
  for _, p in ipairs(params) do
    local v = l[p]
    if v == nil then v = defaults[p] end
    if type(v) ~= 'number' then bad(string.format('field %s must be a number, got %s', p, type(v))) end
    opts[p] = v
    args[#args + 1] = fmt_num(v)
  end
  -- the loss checks its own parameters
  local lopts = {}
  for _, p in ipairs(params) do lopts[p] = opts[p] end
  local ok, err = pcall(loss.byName, l.name, lopts)
  if not ok then bad(tostring(err):gsub('^[^:]*:%d+: ', '')) end
  if l.name == 'crl' then
    id = string.format('crl-a%s-b%s', args[1], args[2])
  elseif l.name == 'focal' then
    id = 'focal-g' .. args[1]
  elseif l.name == 'ce' and opts.smoothing > 0 then
    id = 'ce-ls' .. args[1]
  end
  local label = ({ce = 'CE', nllr = 'NLLR', crl = 'CRL(' .. table.concat(args, ', ') .. ')',
                  focal = 'focal(' .. (args[1] or '') .. ')'})[l.name]
  if l.name == 'ce' and opts.smoothing > 0 then label = 'CE (smoothing ' .. args[1] .. ')' end
  if l.id ~= nil and (type(l.id) ~= 'string' or not l.id:match('^[%w%._%-]+$')) then
    bad('field id must be letters, digits, . _ -, got ' .. tostring(l.id))
  end
  if l.label ~= nil and type(l.label) ~= 'string' then bad('field label must be a string') end
  return {name = l.name, id = l.id or id, label = l.label or label, options = opts}
end

local function check_list(file, where, v, what)
  if type(v) ~= 'table' or #v == 0 then
    error(string.format('suite %s: %s must be a non-empty list of %s, got %s', file, where, what,
                        type(v) == 'table' and 'an empty table' or tostring(v)), 0)
  end
  for k in pairs(v) do
    if type(k) ~= 'number' or k % 1 ~= 0 or k < 1 or k > #v then
      error(string.format("suite %s: %s must be a list of %s; it has the key '%s'", file, where, what,
                          tostring(k)), 0)
    end
  end
end

local function check_ints(file, where, v, what, lo, hi)
  check_list(file, where, v, what)
  for i, x in ipairs(v) do
    if type(x) ~= 'number' or x % 1 ~= 0 or x < lo or (hi and x > hi) then
      error(string.format('suite %s: %s[%d] must be an integer %s, got %s', file, where, i,
                          hi and ('in ' .. lo .. '..' .. hi) or ('>= ' .. lo), tostring(x)), 0)
    end
  end
end

-- Options table -> {'--key', 'value', ...} in sorted order; booleans as --key=true / --key=false.
local function option_args(file, where, opts, into)
  if opts == nil then return into end
  if type(opts) ~= 'table' then error(string.format('suite %s: %s must be a table of options', file, where), 0) end
  local known = {}
  for _, d in ipairs(train.options) do known[d[1]] = d end
  local keys = {}
  for k in pairs(opts) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = opts[k]
    if RESERVED[k] then
      error(string.format("suite %s: %s: option '%s' cannot be set here: %s", file, where, k, RESERVED[k]), 0)
    end
    local d = known[k]
    if not d then
      error(string.format("suite %s: %s: unknown option '%s' (scripts/train.lua --help lists them)", file, where,
                          k), 0)
    end
    if type(v) ~= type(d[2]) then
      error(string.format("suite %s: %s: option '%s' must be a %s, got %s", file, where, k, type(d[2]),
                          tostring(v)), 0)
    end
    into[k] = v
  end
  return into
end

local function argv_of(opts)
  local keys, args = {}, {}
  for k in pairs(opts) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = opts[k]
    if type(v) == 'boolean' then
      args[#args + 1] = '--' .. k .. '=' .. tostring(v)
    else
      args[#args + 1] = '--' .. k .. '=' .. (type(v) == 'number' and fmt_num(v) or v)
    end
  end
  return args
end

local function known_model(name)
  for _, n in ipairs(models.names) do if n == name then return true end end
  -- other depths and widths: built once, small, to let the model's own rules judge
  return pcall(models.build, name, {channels = 1, classes = 2, size = 8})
end

-- Loads and checks a suite file; returns the suite: {file, name, out,
-- runs = {{index, id, dir, dataset, model, loss, seed, fold, options,
-- args}, ...}}. opts.out replaces the suite's folder. Every error names
-- the file and the field.
function M.load(file, opts)
  opts = opts or {}
  local chunk, err = loadfile(file)
  if not chunk then error('suite ' .. file .. ': ' .. tostring(err), 0) end
  local ok, spec = pcall(chunk)
  if not ok then error('suite ' .. file .. ': ' .. tostring(spec), 0) end
  if type(spec) ~= 'table' then
    error(string.format('suite %s must return a table (see lua/crlab/suite.lua), got %s', file, type(spec)), 0)
  end
  for k in pairs(spec) do
    if not TOP_FIELDS[k] then
      error(string.format("suite %s: unknown field '%s' (name, seeds, losses, options, datasets, out)", file,
                          tostring(k)), 0)
    end
  end
  if type(spec.name) ~= 'string' or not spec.name:match('^[%w%._%-]+$') then
    error(string.format('suite %s: field name must be a name of letters, digits, . _ -, got %s', file,
                        tostring(spec.name)), 0)
  end
  if spec.out ~= nil and type(spec.out) ~= 'string' then
    error(string.format('suite %s: field out must be a folder name', file), 0)
  end
  local out = opts.out or spec.out or ('runs/suites/' .. spec.name)
  check_list(file, 'field datasets', spec.datasets, 'dataset entries')
  local base = option_args(file, 'field options', spec.options, {})
  local suite = {file = file, name = spec.name, out = out, runs = {}}
  local seen = {}
  for di, ds in ipairs(spec.datasets) do
    local where = 'datasets[' .. di .. ']'
    if type(ds) ~= 'table' then error(string.format('suite %s: %s must be a table', file, where), 0) end
    for k in pairs(ds) do
      if not DATASET_FIELDS[k] then
        error(string.format("suite %s: %s: unknown field '%s' (name, dataset, options, models, folds, seeds, " ..
                            'losses)', file, where, tostring(k)), 0)
      end
    end
    if type(ds.name) ~= 'string' or not ds.name:match('^[%w%._%-]+$') then
      error(string.format('suite %s: %s: field name must be a name of letters, digits, . _ -, got %s', file, where,
                          tostring(ds.name)), 0)
    end
    where = where .. ' (' .. ds.name .. ')'
    local dname = ds.dataset or ds.name
    local found = false
    for _, n in ipairs(data.names) do found = found or n == dname end
    if not found then
      error(string.format("suite %s: %s: unknown dataset '%s' in field %s (%s)", file, where, tostring(dname),
                          ds.dataset and 'dataset' or 'name', table.concat(data.names, ', ')), 0)
    end
    local seeds = ds.seeds or spec.seeds
    check_ints(file, ds.seeds and where .. ': field seeds' or 'field seeds', seeds, 'seeds', 0)
    local lspec = ds.losses or spec.losses
    check_list(file, ds.losses and where .. ': field losses' or 'field losses', lspec, 'losses')
    local losses = {}
    for li, l in ipairs(lspec) do
      losses[li] = loss_entry(file, (ds.losses and where .. ': ' or '') .. 'losses[' .. li .. ']', l)
    end
    local folds = {false}
    if ds.folds ~= nil then
      check_ints(file, where .. ': field folds', ds.folds, 'folds', 0)
      folds = ds.folds
    end
    local dopts = option_args(file, where .. ': field options', ds.options, {})
    check_list(file, where .. ': field models', ds.models, 'models')
    for mi, m in ipairs(ds.models) do
      local mwhere = where .. ': models[' .. mi .. ']'
      if type(m) == 'string' then m = {name = m} end
      if type(m) ~= 'table' or type(m.name) ~= 'string' then
        error(string.format("suite %s: %s must be a model name or {name = 'resnet20', options = {...}}", file,
                            mwhere), 0)
      end
      for k in pairs(m) do
        if k ~= 'name' and k ~= 'options' then
          error(string.format("suite %s: %s: unknown field '%s' (name, options)", file, mwhere, tostring(k)), 0)
        end
      end
      if not known_model(m.name) then
        error(string.format("suite %s: %s: unknown model '%s' in field name (%s, or resnetN, wrn-D-K, " ..
                            'densenet-bc-L-K)', file, mwhere, m.name, table.concat(models.names, ', ')), 0)
      end
      mwhere = where .. ': model ' .. m.name
      local mopts = option_args(file, mwhere .. ': field options', m.options, {})
      for _, l in ipairs(losses) do
        for _, fold in ipairs(folds) do
          for _, seed in ipairs(seeds) do
            local o = {}
            for k, v in pairs(base) do o[k] = v end
            for k, v in pairs(dopts) do o[k] = v end
            for k, v in pairs(mopts) do o[k] = v end
            for k, v in pairs(l.options) do o[k] = v end
            o.dataset, o.model, o.seed = dname, m.name, seed
            if fold then o.fold = fold end
            local id = string.format('%s/%s/%s/%ss%d', ds.name, m.name, l.id,
                                     fold and string.format('f%d-', fold) or '', seed)
            if seen[id] then
              error(string.format('suite %s: duplicate run id %s (from %s and %s): give the entries other names ' ..
                                  'or the losses other ids', file, id, seen[id], mwhere .. ', ' .. l.id), 0)
            end
            seen[id] = mwhere .. ', ' .. l.id
            local args = argv_of(o)
            -- the trainer's own checks of every value, before anything runs
            local pok, parsed = pcall(train.parse, args)
            if not pok then error(string.format('suite %s: %s, loss %s: %s', file, mwhere, l.id, parsed), 0) end
            local run = {index = #suite.runs + 1, id = id, dir = out .. '/' .. id, dataset = ds.name,
                         model = m.name, loss = l, seed = seed, fold = fold or nil, options = parsed, args = args}
            suite.runs[#suite.runs + 1] = run
          end
        end
      end
    end
  end
  return suite
end

-- The runs whose id matches pattern: a comma-separated list of globs (*
-- any characters, ? one), each matched anywhere in the id; nil: all.
function M.select(suite, pattern)
  if pattern == nil or pattern == '' then return suite.runs end
  local pats = {}
  for g in pattern:gmatch('[^,]+') do
    pats[#pats + 1] = g:gsub('[%^%$%(%)%%%.%[%]%+%-]', '%%%0'):gsub('%*', '.*'):gsub('%?', '.')
  end
  local out = {}
  for _, r in ipairs(suite.runs) do
    for _, p in ipairs(pats) do
      if r.id:find(p) then
        out[#out + 1] = r
        break
      end
    end
  end
  return out
end

---------------------------------------------------------------------------
-- a run's state, from its folder

for _, decl in ipairs({'int open(const char *pathname, int flags, ...);', 'int close(int fd);',
                       'int flock(int fd, int operation);', 'int usleep(unsigned int usec);',
                       'int waitpid(int pid, int *status, int options);',
                       'int posix_spawn(int *pid, const char *path, const void *file_actions, const void *attrp, ' ..
                       'char *const argv[], char *const envp[]);', 'extern char **environ;',
                       'int getpid(void);'}) do
  pcall(ffi.cdef, decl)
end
local O_RDONLY, O_RDWR, O_CREAT = 0, 2, 64        -- Linux's values
local LOCK_EX, LOCK_NB, WNOHANG = 2, 4, 1

local function exists(path)
  local f = io.open(path, 'r')
  if f then f:close() end
  return f ~= nil
end

local read_file = require('crlab.core').readFile

-- True when a live process holds the run's lock (a trainer started by some runner).
function M.locked(run)
  local path = run.dir .. '/.lock'
  if not exists(path) then return false end
  local fd = ffi.C.open(path, O_RDONLY)
  if fd < 0 then return false end
  local held = ffi.C.flock(fd, LOCK_EX + LOCK_NB) ~= 0
  ffi.C.close(fd) -- closing releases a lock taken here
  return held
end

-- The run's metrics.jsonl records, one per epoch, in order (lines that do
-- not read as JSON, e.g. one cut by an interruption, are left out).
function M.metrics(run)
  return (require('crlab.metrics').readRecords(run.dir .. '/metrics.jsonl')) or {}
end

-- {state = 'pending' | 'partial' | 'running' | 'done' | 'failed', epoch, epochs, failure (failed.json's
-- record), damaged (why the checkpoint does not read)}
function M.state(run)
  local epochs = run.options.epochs
  local st = {epoch = 0, epochs = epochs}
  local path = run.dir .. '/checkpoint.safetensors'
  if exists(path) then
    local ok, meta = pcall(ckpt.metadata, path)
    if ok then
      st.epoch = tonumber(meta.epoch) or 0
    else
      st.damaged = tostring(meta)
    end
  end
  local rec = read_file(run.dir .. '/failed.json')
  if rec then
    local ok, r = pcall(json.decode, rec)
    st.failure = ok and type(r) == 'table' and r or {error = 'failed.json does not read: ' .. tostring(r)}
  end
  if M.locked(run) then
    st.state = 'running'
  elseif st.epoch >= epochs then
    st.state = 'done'
  elseif st.failure then
    st.state = 'failed'
  elseif st.epoch > 0 then
    st.state = 'partial'
  else
    st.state = 'pending'
  end
  return st
end

function M.describe(st)
  if st.damaged and (st.state == 'partial' or st.state == 'pending') then
    return st.state .. ' (its checkpoint does not read: ' .. st.damaged:match('[^\n]*') .. ')'
  end
  if st.state == 'partial' then return string.format('partial (epoch %d of %d)', st.epoch, st.epochs) end
  if st.state == 'running' then return string.format('running (epoch %d of %d done)', st.epoch, st.epochs) end
  if st.state == 'failed' then
    local first = tostring(st.failure.error or ''):match('[^\n]*')
    return string.format('failed (%s): %s', st.failure.status or '?', first)
  end
  if st.state == 'done' then return string.format('done (%d epochs)', st.epoch) end
  return 'pending'
end

---------------------------------------------------------------------------
-- running: each run is `scripts/crlab scripts/train.lua ARGS --out DIR
-- [--resume]` in a child process that holds the run's lock (flock(2) on
-- DIR/.lock, taken here and inherited by the child), so no second trainer
-- can start on a folder while one lives, whoever started it.

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sleep(s) ffi.C.usleep(math.floor(s * 1e6)) end

local function write_atomic(path, text)
  train.replace_file(path, text)
end

-- The command line of a run: the options of the suite plus those of this
-- invocation (slot: {threads, device}; stop_after).
function M.command(run, slot, resume, stop_after)
  local home = os.getenv('CRLAB_HOME') or '.'
  local args = {shell_quote(home .. '/scripts/crlab'), shell_quote(home .. '/scripts/train.lua')}
  for _, a in ipairs(run.args) do args[#args + 1] = shell_quote(a) end
  args[#args + 1] = '--out=' .. shell_quote(run.dir)
  if resume then args[#args + 1] = '--resume' end
  if slot and slot.threads then args[#args + 1] = '--threads=' .. slot.threads end
  if slot and (slot.device or slot.cuda) then args[#args + 1] = '--device=cuda' end
  if stop_after and stop_after > 0 then args[#args + 1] = '--stop-after=' .. stop_after end
  local env = slot and slot.device and ('CUDA_VISIBLE_DEVICES=' .. shell_quote(slot.device) .. ' ') or ''
  return env .. 'exec ' .. table.concat(args, ' ')
end

local function spawn(cmd)
  local argv = ffi.new('char *[4]')
  local strs = {'sh', '-c', cmd}
  local keep = {}
  for i, s in ipairs(strs) do
    keep[i] = ffi.new('char[?]', #s + 1, s)
    argv[i - 1] = keep[i]
  end
  argv[3] = nil
  local pid = ffi.new('int[1]')
  local rc = ffi.C.posix_spawn(pid, '/bin/sh', nil, nil, argv, ffi.C.environ)
  if rc ~= 0 then error('suite: cannot start a process (posix_spawn error ' .. rc .. ')', 0) end
  return pid[0]
end

-- Starts a run unless it is done or locked: returns 'done', 'locked', or
-- 'started' and the job {run, pid, resume, t0}.
function M.start(run, slot, stop_after)
  train.mkdir_p(run.dir)
  local fd = ffi.C.open(run.dir .. '/.lock', O_RDWR + O_CREAT, ffi.cast('int', 420)) -- 0644
  if fd < 0 then error('suite: cannot open the lock file ' .. run.dir .. '/.lock', 0) end
  if ffi.C.flock(fd, LOCK_EX + LOCK_NB) ~= 0 then
    ffi.C.close(fd)
    return 'locked'
  end
  -- under the lock: nobody else can be training this run now
  local st = M.state(run)
  if st.epoch >= st.epochs then
    ffi.C.close(fd)
    os.remove(run.dir .. '/failed.json')
    return 'done'
  end
  local resume = exists(run.dir .. '/checkpoint.safetensors')
  local cmd = M.command(run, slot, resume, stop_after) .. ' >> ' .. shell_quote(run.dir .. '/train.log') ..
              ' 2> ' .. shell_quote(run.dir .. '/stderr.log')
  local ok, pid = pcall(spawn, cmd)
  ffi.C.close(fd) -- the child holds the lock now, as long as it lives
  if not ok then error(pid, 0) end
  return 'started', {run = run, pid = pid, resume = resume, from = st.epoch, t0 = os.time(), slot = slot,
                     stop_after = stop_after}
end

local function tail(path, lines)
  local s = read_file(path) or ''
  local all = {}
  for l in s:gmatch('[^\n]+') do all[#all + 1] = l end
  local from = math.max(1, #all - lines + 1)
  return table.concat(all, '\n', from)
end

-- After a job's process ended with wait status ws: its result {state,
-- status, message}, with the failure recorded in DIR/failed.json (or the
-- record removed once the run is done).
function M.finish(job, ws)
  local run = job.run
  local code, sig = nil, nil
  if ws % 128 == 0 then code = math.floor(ws / 256) % 256 else sig = ws % 128 end
  local st = M.state(run)
  if code == 0 and st.epoch >= st.epochs then
    os.remove(run.dir .. '/failed.json')
    return {state = 'done', epoch = st.epoch}
  end
  if code == 0 and job.stop_after and job.stop_after > 0 then
    return {state = 'stopped', epoch = st.epoch}
  end
  local status = code and ('exit ' .. code) or ('signal ' .. sig)
  local stderr = tail(run.dir .. '/stderr.log', 20)
  -- the message: the line the crlab command prints for an error, else the last line
  local err = (read_file(run.dir .. '/stderr.log') or ''):match('crlab: ([^\n]*)') or stderr:match('([^\n]*)$')
  if code == 0 then err = string.format('the trainer ended at epoch %d of %d without an error', st.epoch, st.epochs) end
  if err == '' then err = '(nothing on stderr)' end
  if err:find('cannot change when it resumes', 1, true) then
    err = 'the suite\'s options for this run differ from those it was started with (was the suite file edited?); ' ..
          'move its folder away to start it again, or restore the options. ' .. err
  end
  local rec = {id = run.id, status = status, exit_code = code, signal = sig, error = err, stderr = stderr,
               epoch = st.epoch, epochs = st.epochs, time = os.date('!%Y-%m-%dT%H:%M:%SZ'),
               command = M.command(run, job.slot, job.resume, job.stop_after)}
  write_atomic(run.dir .. '/failed.json', json.encode(rec) .. '\n')
  return {state = 'failed', status = status, error = err, epoch = st.epoch}
end

-- Waits for a job's process; returns its wait status, or nil when it still
-- runs and block is false.
local function wait(job, block)
  local ws = ffi.new('int[1]')
  while true do
    local r = ffi.C.waitpid(job.pid, ws, block and 0 or WNOHANG)
    if r == job.pid then return ws[0] end
    if r == 0 then return nil end
    if ffi.errno() ~= 4 then error('suite: waitpid failed for process ' .. job.pid, 0) end -- 4: EINTR
  end
end

local function say(log, fmt, ...)
  log(string.format(fmt, ...))
  io.stdout:flush() -- seen as it happens when the output is a file or a pipe
end

-- Runs or resumes one run in the foreground (scripts/suite.lua run-one):
-- waits while another process trains it. Returns 'done', 'stopped' (with
-- epochs left after stop_after) or 'failed' and the result.
function M.run_one(run, opts)
  opts = opts or {}
  local log = opts.log or print
  local waited = false
  while true do
    local how, job = M.start(run, opts.slot, opts.stop_after)
    if how == 'done' then
      say(log, '%s: done', run.id)
      return 'done', {state = 'done'}
    elseif how == 'locked' then
      if not waited then say(log, '%s: another process is training it; waiting for it to end', run.id) end
      waited = true
      sleep(opts.poll or 2)
    else
      say(log, '%s: %s (pid %d, log %s/train.log)', run.id,
          job.resume and string.format('resuming after epoch %d of %d', job.from, run.options.epochs) or 'starting',
          job.pid, run.dir)
      local r = M.finish(job, wait(job, true))
      if r.state == 'failed' then
        say(log, '%s: failed (%s): %s', run.id, r.status, r.error:match('[^\n]*'))
      else
        say(log, '%s: %s at epoch %d of %d', run.id, r.state, r.epoch, run.options.epochs)
      end
      return r.state, r
    end
  end
end

-- Runs the runs as a queue: opts.jobs at once (default 1), each job with
-- opts.threads / jobs threads, or one GPU of opts.devices (a list) per job.
-- Done runs are skipped; partial and failed ones resume from their
-- checkpoint; a run another process trains (a trainer left by a runner
-- killed earlier) is waited for, then taken up if it is not done. A run
-- that fails is not retried in the same call. Returns the counts
-- {done, failed, started, skipped} and the failed runs.
function M.run(runs, opts)
  opts = opts or {}
  local log = opts.log or print
  local devices = opts.devices
  local jobs = opts.jobs or (devices and #devices) or 1
  local threads = opts.threads or require('crlab.core').C.crl_get_num_threads()
  local slots = {}
  for i = 1, jobs do
    slots[i] = {threads = math.max(1, math.floor(threads / jobs)),
                device = devices and devices[(i - 1) % #devices + 1] or nil, free = true}
  end
  local queue, waiting, active, pos = {}, {}, {}, {}
  for i, r in ipairs(runs) do
    queue[#queue + 1] = r
    pos[r] = i
  end
  local counts, failed = {done = 0, failed = 0, started = 0, skipped = 0}, {}
  local total = #runs
  local function free_slot()
    for _, s in ipairs(slots) do if s.free then return s end end
  end
  while true do
    local slot = free_slot()
    while slot and #queue > 0 do
      local run = table.remove(queue, 1)
      local how, job = M.start(run, slot)
      if how == 'done' then
        counts.skipped = counts.skipped + 1
        counts.done = counts.done + 1
      elseif how == 'locked' then
        say(log, '[%d/%d] %s: another process is training it; taken up when it ends', pos[run], total, run.id)
        waiting[#waiting + 1] = run
      else
        slot.free = false
        active[#active + 1] = job
        counts.started = counts.started + 1
        say(log, '[%d/%d] %s: %s, pid %d%s', pos[run], total, run.id,
            job.resume and string.format('resuming after epoch %d of %d', job.from, run.options.epochs) or
            string.format('starting (%d epochs)', run.options.epochs), job.pid,
            slot.device and ', GPU ' .. slot.device or ', ' .. slot.threads .. ' threads')
        slot = free_slot()
      end
    end
    if #active == 0 and #queue == 0 and #waiting == 0 then break end
    local i = 1
    local ended = false
    while i <= #active do
      local job = active[i]
      local ws = wait(job, false)
      if ws then
        ended = true
        table.remove(active, i)
        job.slot.free = true
        local r = M.finish(job, ws)
        local secs = os.time() - job.t0
        if r.state == 'done' then
          counts.done = counts.done + 1
          local recs = M.metrics(job.run)
          local last = recs[#recs] or {}
          say(log, '[%d/%d] %s: done (%d s): test accuracy %s, ECE %s', pos[job.run], total, job.run.id, secs,
              type(last.test_acc) == 'number' and string.format('%.2f%%', 100 * last.test_acc) or '?',
              type(last.test_ece) == 'number' and string.format('%.4f', last.test_ece) or '?')
        else
          counts.failed = counts.failed + 1
          failed[#failed + 1] = {run = job.run, result = r}
          say(log, '[%d/%d] %s: FAILED (%s): %s', pos[job.run], total, job.run.id, r.status,
              r.error:match('[^\n]*'))
        end
      else
        i = i + 1
      end
    end
    -- runs another process held: back in the queue once their lock is free
    local j = 1
    while j <= #waiting do
      if not M.locked(waiting[j]) then
        queue[#queue + 1] = table.remove(waiting, j)
      else
        j = j + 1
      end
    end
    if not ended then sleep(opts.poll or 0.2) end
  end
  return counts, failed
end

---------------------------------------------------------------------------
-- plan and status

-- Training images per epoch of each dataset's official split, for the
-- cost estimate only (the trainer counts the real ones). Adience's split
-- changes with the fold: about four fifths of its ~17,400 age-labelled
-- faces; a folder dataset's size is unknown here.
M.TRAIN_IMAGES = {['fashion-mnist'] = 60000, mnist = 60000, cifar10 = 50000, cifar100 = 50000, svhn = 73257,
                  svhn_extra = 73257 + 531131, cub200 = 5994, cars = 8144, adience = 14000, imagenet = 1281167}

local function train_images(o)
  local n = M.TRAIN_IMAGES[o.dataset == 'svhn' and o.extra and 'svhn_extra' or o.dataset]
  if o['train-limit'] > 0 then n = n and math.min(n, o['train-limit']) or o['train-limit'] end
  return n
end

-- Per run: its state, image-epochs in all and left, and an estimate of the
-- seconds left from the runs of this suite that have metrics: per dataset
-- entry and model, the seconds of their recorded epochs (training and test
-- passes) per training image-epoch, times the image-epochs left.
function M.plan(suite, runs)
  local rate = {}
  for _, r in ipairs(suite.runs) do
    local n = train_images(r.options)
    local key = r.dataset .. '/' .. r.model
    for _, rec in ipairs(M.metrics(r)) do
      if n and type(rec.epoch_seconds) == 'number' then
        local x = rate[key] or {secs = 0, imgs = 0}
        x.secs, x.imgs = x.secs + rec.epoch_seconds, x.imgs + n
        rate[key] = x
      end
    end
  end
  local rows, total = {}, {image_epochs = 0, left = 0, secs = 0, unknown = 0}
  for _, r in ipairs(runs) do
    local st = M.state(r)
    local n = train_images(r.options)
    local left_epochs = math.max(0, r.options.epochs - st.epoch)
    local row = {run = r, state = st, images = n, image_epochs = n and n * r.options.epochs,
                 left = n and n * left_epochs}
    local x = rate[r.dataset .. '/' .. r.model]
    if row.left and x and x.imgs > 0 then row.secs = row.left * x.secs / x.imgs end
    total.image_epochs = total.image_epochs + (row.image_epochs or 0)
    total.left = total.left + (row.left or 0)
    if row.secs then total.secs = total.secs + row.secs
    elseif left_epochs > 0 then total.unknown = total.unknown + 1 end
    rows[#rows + 1] = row
  end
  return {rows = rows, total = total}
end

local function fmt_secs(s)
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format('%dh%02dm', s / 3600, (s / 60) % 60) end
  if s >= 60 then return string.format('%dm%02ds', s / 60, s % 60) end
  return s .. 's'
end
M.fmt_secs = fmt_secs

local function fmt_count(n)
  if not n then return '?' end
  if n >= 1e9 then return string.format('%.2fG', n / 1e9) end
  if n >= 1e6 then return string.format('%.2fM', n / 1e6) end
  if n >= 1e4 then return string.format('%.1fk', n / 1e3) end
  return tostring(n)
end

function M.format_plan(suite, p)
  local out = {string.format('suite %s (%s): %d runs in %s', suite.name, suite.file, #p.rows, suite.out)}
  for _, row in ipairs(p.rows) do
    local r = row.run
    out[#out + 1] = string.format('%4d  %-44s %-26s image-epochs %s, left %s%s', r.index, r.id, M.describe(row.state),
                                  fmt_count(row.image_epochs), fmt_count(row.left),
                                  row.secs and ', ~' .. fmt_secs(row.secs) or '')
    out[#out + 1] = '      ' .. r.dir .. ': ' .. table.concat(r.args, ' ')
  end
  local t = p.total
  out[#out + 1] = string.format('total: %s training image-epochs, %s left; estimated time left %s%s', fmt_count(
                                t.image_epochs), fmt_count(t.left), fmt_secs(t.secs), t.unknown > 0 and string.format(
                                ' for the runs with a measured rate, plus %d runs not estimated (no finished ' ..
                                'epoch of their dataset and model yet)', t.unknown) or '')
  out[#out + 1] = '(estimate: seconds per training image-epoch, test pass included, of the epochs this suite has ' ..
                  'recorded for the same dataset and model, on the machine they ran on, one job at a time)'
  return table.concat(out, '\n') .. '\n'
end

function M.format_status(suite, runs)
  local out, count = {}, {}
  for _, r in ipairs(runs) do
    local st = M.state(r)
    count[st.state] = (count[st.state] or 0) + 1
    out[#out + 1] = string.format('%4d  %-44s %s', r.index, r.id, M.describe(st))
  end
  local parts = {}
  for _, k in ipairs({'done', 'running', 'partial', 'failed', 'pending'}) do
    if count[k] then parts[#parts + 1] = count[k] .. ' ' .. k end
  end
  table.insert(out, 1, string.format('suite %s: %d runs in %s: %s', suite.name, #runs, suite.out,
                                     table.concat(parts, ', ')))
  return table.concat(out, '\n') .. '\n'
end

---------------------------------------------------------------------------
-- Slurm: one array task per run, each `suite.lua run-one SUITE
-- $SLURM_ARRAY_TASK_ID`, requeued by the script crlab.slurm writes when it
-- exits 75 (stopped by --stop-after with epochs left).

local function abspath(p)
  if p:sub(1, 1) == '/' then return p end
  local pwd = os.getenv('PWD')
  if not pwd then
    local h = io.popen('pwd')
    pwd = h:read('*l')
    h:close()
  end
  return pwd .. '/' .. p
end

-- Writes OUT/slurm.sh; returns its path and text. opts: time, cpus, gpus,
-- partition, stop_after, requeue_before.
function M.slurm(suite, opts)
  local ok, slurm = pcall(require, 'crlab.slurm')
  if not ok then
    error('suite: crlab.slurm cannot be loaded (' .. tostring(slurm):match('[^\n]*'):gsub(':$', '') .. ')', 0)
  end
  local home = abspath(os.getenv('CRLAB_HOME') or '.')
  local out = abspath(suite.out)
  local cmd = string.format('%s %s run-one %s "$SLURM_ARRAY_TASK_ID" --out=%s', shell_quote(home .. '/scripts/crlab'),
                            shell_quote(home .. '/scripts/suite.lua'), shell_quote(abspath(suite.file)),
                            shell_quote(out))
  if opts.cpus then cmd = cmd .. ' --threads=' .. opts.cpus end
  if opts.gpus and opts.gpus > 0 then cmd = cmd .. ' --device=cuda' end
  if opts.stop_after then cmd = cmd .. ' --stop-after=' .. opts.stop_after end
  local sok, text = pcall(slurm.script, {job_name = 'crlab-' .. suite.name, array_size = #suite.runs, command = cmd,
                                         workdir = home, log_dir = out .. '/slurm-logs', time = opts.time,
                                         cpus_per_task = opts.cpus, gpus = opts.gpus, partition = opts.partition,
                                         requeue_before = opts.requeue_before})
  if not sok then -- its options as this command line names them, without a Lua location
    local msg = tostring(text):gsub('^[^\n]-%.lua:%d+: ', ''):gsub('option requeue_before', '--requeue-before')
                              :gsub('requeue_before = 0', '--requeue-before 0'):gsub('option time', '--time')
    error('suite: ' .. msg, 0)
  end
  train.mkdir_p(suite.out .. '/slurm-logs')
  local path = suite.out .. '/slurm.sh'
  write_atomic(path, text)
  return path, text
end

return M
