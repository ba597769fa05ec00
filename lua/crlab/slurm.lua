-- crlab.slurm: a suite's runs as a Slurm job array, one array task per run.
--
--   local slurm = require 'crlab.slurm'
--   local text = slurm.script{job_name = 'smoke', array_size = 6, workdir = '/abs/checkout',
--                             log_dir = '/abs/runs/suites/smoke/slurm',
--                             command = 'scripts/crlab scripts/suite.lua run-one smoke $SLURM_ARRAY_TASK_ID',
--                             time = '04:00:00', cpus_per_task = 8, gpus = 1, partition = 'gpu',
--                             extra = {'--mem=32G'}}
--   slurm.write('/abs/runs/suites/smoke/smoke.sbatch', opts)  -- the same text, written atomically
--   local id = slurm.submit('/abs/runs/suites/smoke/smoke.sbatch')   -- sbatch --parsable
--   slurm.submit(path, {'--array=3,7'})                              -- only tasks 3 and 7
--   local tasks = slurm.wait(id, 3600)                                -- polls squeue, then scontrol
--
-- What a task does: it runs `command` (which may use $SLURM_ARRAY_TASK_ID)
-- in the background and waits for it.
--   * exit 75 (EX_TEMPFAIL: the run stopped under --stop-after with epochs
--     left): the task requeues itself (scontrol requeue JOB_TASK) and exits
--     0; when it starts again the run resumes from its checkpoint.
--   * preemption or a node failure: --requeue lets Slurm requeue the task,
--     and the run resumes from its last checkpoint the same way.
--   * the time limit: with `time`, the job asks for SIGUSR1 `requeue_before`
--     seconds before the limit (--signal=B:USR1@T, to the batch shell only);
--     the task then requeues itself, Slurm ends the run's processes, and the
--     epoch in progress is lost (the checkpoint is written atomically after
--     each epoch, so the run resumes from the last one). Choosing
--     --stop-after so that a run's segment fits in the limit avoids that loss;
--     the signal is the safety net. Slurm may send it up to a minute early.
--   * any other status: the task ends with it (FAILED in squeue/sacct).
-- Slurm holds a requeued task for its credential lifetime (AuthInfo
-- cred_expire, 120 s by default) before it can start again.
-- Output goes to log_dir/<job_name>_<array job id>_<task>.out and .err,
-- appended across the task's restarts.
local M = {}

-- The exit status of a run that stopped early with epochs left
-- (scripts/suite.lua run-one --stop-after): EX_TEMPFAIL of sysexits.h.
M.EXIT_STOPPED = 75

-- With a time limit, SIGUSR1 comes this many seconds before it unless
-- requeue_before says otherwise: enough for Slurm's up-to-60-s early
-- delivery and for the task to requeue itself.
M.REQUEUE_BEFORE = 120

-- level: 3 reports the line that called the public function fn (fail is
-- called from fn itself); 4 when called from a helper of fn.
local function fail(fn, msg, level) error('slurm.' .. fn .. ': ' .. msg, level or 3) end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Slurm's time formats: minutes, minutes:seconds, hours:minutes:seconds,
-- days-hours, days-hours:minutes, days-hours:minutes:seconds. Returns seconds.
local time_formats = {
  {'^(%d+)$', function(m) return 60 * m end},
  {'^(%d+):(%d+)$', function(m, s) return 60 * m + s end},
  {'^(%d+):(%d+):(%d+)$', function(h, m, s) return 3600 * h + 60 * m + s end},
  {'^(%d+)%-(%d+)$', function(d, h) return 86400 * d + 3600 * h end},
  {'^(%d+)%-(%d+):(%d+)$', function(d, h, m) return 86400 * d + 3600 * h + 60 * m end},
  {'^(%d+)%-(%d+):(%d+):(%d+)$', function(d, h, m, s) return 86400 * d + 3600 * h + 60 * m + s end},
}
function M.time_seconds(t)
  if type(t) == 'number' and t >= 1 and t % 1 == 0 then return 60 * t end
  if type(t) ~= 'string' then return nil end
  for _, f in ipairs(time_formats) do
    local a, b, c, d = t:match(f[1])
    if a then
      local s = f[2](tonumber(a), tonumber(b), tonumber(c), tonumber(d))
      return s > 0 and s or nil
    end
  end
  return nil
end

-- Characters allowed in a value written on an #SBATCH line: sbatch reads
-- those lines with its own rules, not the shell's, so nothing that would
-- need quoting there, and no % (its file-name patterns) in paths.
local function plain_word(v) return type(v) == 'string' and v ~= '' and v:match('^[%w%._%-/:=+,@]+$') ~= nil end
-- An option for sbatch (an extra #SBATCH line, or on its command line):
-- a dash, then no space, quote or backslash; constraints such as
-- --constraint=a100|h100 pass.
local function sbatch_option(v) return type(v) == 'string' and v:match('^%-[^%s\'"\\]+$') ~= nil end
local function count(v, min) return type(v) == 'number' and v % 1 == 0 and v >= min and v < 2 ^ 31 end

-- Each option: a check (true when good) and what a good value is.
local checks = {
  job_name = {function(v) return type(v) == 'string' and v:match('^[%w%._%-]+$') ~= nil end,
              'a name of letters, digits, . _ -'},
  array_size = {function(v) return count(v, 1) end, 'an integer >= 1 (the number of runs)'},
  command = {function(v) return type(v) == 'string' and v:match('%S') ~= nil and not v:find('%z') end,
             'a non-empty shell command'},
  workdir = {function(v) return plain_word(v) and v:sub(1, 1) == '/' end,
             'an absolute path without spaces, quotes or %'},
  log_dir = {function(v) return plain_word(v) and v:sub(1, 1) == '/' end,
             'an absolute path without spaces, quotes or %'},
  time = {function(v) return M.time_seconds(v) ~= nil end,
          'a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS'},
  cpus_per_task = {function(v) return count(v, 1) end, 'an integer >= 1'},
  gpus = {function(v) return count(v, 0) end, 'an integer >= 0 (GPUs per task; 0: none)'},
  partition = {function(v) return type(v) == 'string' and v:match('^[%w%._%-]+$') ~= nil end,
               'a partition name of letters, digits, . _ -'},
  requeue_before = {function(v) return count(v, 0) end,
                    'an integer >= 0 (seconds before the time limit; 0: no signal)'},
  extra = {function(v)
             if type(v) ~= 'table' then return false end
             local n = 0
             for _ in pairs(v) do n = n + 1 end
             if n ~= #v then return false end   -- a list, not a map
             for i, o in ipairs(v) do
               if not sbatch_option(o) then return false, i end
             end
             return true
           end, "a list of sbatch options, each like '--mem=32G' (no spaces or quotes)"},
}
local required = {'job_name', 'array_size', 'command', 'workdir', 'log_dir'}
local order = {'job_name', 'array_size', 'command', 'workdir', 'log_dir', 'time', 'cpus_per_task', 'gpus',
               'partition', 'requeue_before', 'extra'}

local function check_options(fn, o)
  local function fail(f, msg) error('slurm.' .. f .. ': ' .. msg, 4) end
  if type(o) ~= 'table' then fail(fn, 'expects a table of options, got ' .. type(o)) end
  for k in pairs(o) do
    if not checks[k] then
      fail(fn, string.format("unknown option '%s' (known: %s)", tostring(k), table.concat(order, ', ')))
    end
  end
  for _, k in ipairs(required) do
    if o[k] == nil then fail(fn, "option '" .. k .. "' is required: " .. checks[k][2]) end
  end
  for _, k in ipairs(order) do
    local v = o[k]
    if v ~= nil then
      local good, at = checks[k][1](v)
      if not good then
        local shown = type(v) == 'table' and (at and string.format('element %d, %s', at, tostring(v[at])) or 'table')
                      or string.format('%q', tostring(v)):gsub('\\\n', '\\n')
        fail(fn, string.format('option %s must be %s, got %s', k, checks[k][2], shown))
      end
    end
  end
  local limit = o.time and M.time_seconds(o.time)
  if o.requeue_before and o.requeue_before > 0 and not limit then
    fail(fn, 'option requeue_before needs a time limit (option time)')
  end
  local before = o.requeue_before or M.REQUEUE_BEFORE
  if limit and before >= limit then
    fail(fn, string.format('option requeue_before (%d s) must be shorter than the time limit %s (%d s); ' ..
                           'give requeue_before = 0 to send no signal', before, o.time, limit))
  end
end

-- The task's body: POSIX sh, run by sbatch's /bin/sh.
local body = [[
cd %s || { echo "crlab: cannot enter %s" >&2; exit 1; }
task="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
echo "crlab: task $task, start $((${SLURM_RESTART_COUNT:-0} + 1)), on $(hostname) at $(date '+%%F %%T')"

# SIGUSR1 (--signal=B:USR1@T) arrives while the shell waits for the command,
# so the command runs in the background and the shell in `wait`.
near_limit=0
trap 'near_limit=1' USR1
{
%s
} &
child=$!
while :; do
  wait "$child"
  status=$?
  if [ "$near_limit" = 1 ]; then
    near_limit=2
    echo "crlab: task $task: the time limit is near; requeueing it (the run resumes from its last checkpoint)"
    scontrol requeue "$task" || echo "crlab: scontrol requeue $task failed" >&2
  fi
  # a trapped signal ends `wait` early: wait again while the command runs
  kill -0 "$child" 2>/dev/null || break
done

if [ "$status" -eq %d ]; then
  echo "crlab: task $task stopped early with epochs left (exit %d); requeueing it at $(date '+%%F %%T')"
  if scontrol requeue "$task"; then exit 0; fi
  echo "crlab: scontrol requeue $task failed; submit the array again to resume the run" >&2
  exit %d
fi
echo "crlab: task $task ended with exit status $status at $(date '+%%F %%T')"
exit "$status"
]]

-- The text of the job-array script (see the top of this file).
function M.script(o)
  check_options('script', o)
  local lines = {
    '#!/bin/sh',
    '# crlab job array: one task per run; written by crlab.slurm.script.',
    '#SBATCH --job-name=' .. o.job_name,
    '#SBATCH --array=1-' .. o.array_size,
    '#SBATCH --requeue',
    '#SBATCH --open-mode=append',
    '#SBATCH --chdir=' .. o.workdir,
    '#SBATCH --output=' .. o.log_dir .. '/%x_%A_%a.out',
    '#SBATCH --error=' .. o.log_dir .. '/%x_%A_%a.err',
  }
  local function add(s) lines[#lines + 1] = '#SBATCH ' .. s end
  if o.time then add('--time=' .. o.time) end
  local before = o.requeue_before or M.REQUEUE_BEFORE
  if o.time and before > 0 then add(string.format('--signal=B:USR1@%d', before)) end
  if o.cpus_per_task then add('--cpus-per-task=' .. o.cpus_per_task) end
  if o.gpus and o.gpus > 0 then add('--gres=gpu:' .. o.gpus) end
  if o.partition then add('--partition=' .. o.partition) end
  for _, e in ipairs(o.extra or {}) do add(e) end
  local cmd = o.command:gsub('\n+$', '')
  lines[#lines + 1] = ''
  lines[#lines + 1] = string.format(body, shell_quote(o.workdir), o.workdir, cmd, M.EXIT_STOPPED,
                                    M.EXIT_STOPPED, M.EXIT_STOPPED)
  return table.concat(lines, '\n')
end

-- Writes the script to path (a temporary file renamed over it, executable)
-- and creates log_dir, which Slurm needs before a task starts. Returns the text.
function M.write(path, o)
  if type(path) ~= 'string' or path == '' then fail('write', 'expects a file path, got ' .. tostring(path)) end
  check_options('write', o)
  local text = M.script(o)
  local core = require 'crlab.core'
  local ok, why = core.mkdirs(o.log_dir)
  if ok then ok, why = core.replaceFile(path, text, '755') end
  if not ok then fail('write', why) end
  return text
end

-- Runs a shell command; returns its stdout, stderr and exit status
-- (LuaJIT's popen close does not give the status: it comes back on stdout).
local function run(cmd)
  local errf = os.tmpname()
  local p = io.popen(cmd .. ' 2>' .. shell_quote(errf) .. '; echo "rc=$?"')
  local out = p:read('*a')
  p:close()
  local f = io.open(errf)
  local err = f and f:read('*a') or ''
  if f then f:close() end
  os.remove(errf)
  local code = tonumber(out:match('rc=(%d+)%s*$'))
  return out:gsub('rc=%d+%s*$', ''), err, code
end

local function found(prog)
  local out = run('command -v ' .. prog)
  return out:match('%S') ~= nil
end

-- true when the Slurm client commands are installed; else false and why.
function M.available()
  for _, prog in ipairs{'sbatch', 'squeue', 'scontrol'} do
    if not found(prog) then
      return false, prog .. ' was not found on PATH (Slurm\'s client commands; Debian: apt-get install slurm-client)'
    end
  end
  return true
end

local function need(fn)
  local ok, why = M.available()
  if not ok then fail(fn, why, 4) end
end

-- Submits a script with sbatch; returns the job id (a string of digits).
-- options: a list of sbatch options that override the script's #SBATCH
-- lines, e.g. {'--array=3,7'} to run only those tasks.
function M.submit(path, options)
  if type(path) ~= 'string' then fail('submit', 'expects the path of a script, got ' .. type(path)) end
  local args = {}
  if options ~= nil then
    local good, at = checks.extra[1](options)
    if not good then
      fail('submit', 'options must be ' .. checks.extra[2] .. ', got ' ..
                     (at and string.format('element %d, %s', at, tostring(options[at])) or type(options)))
    end
    for _, o in ipairs(options) do args[#args + 1] = shell_quote(o) end
  end
  local f = io.open(path)
  if not f then fail('submit', 'cannot read the script ' .. path) end
  f:close()
  need('submit')
  args[#args + 1] = shell_quote(path)
  local out, err, code = run('sbatch --parsable ' .. table.concat(args, ' '))
  local id = out:match('^%s*(%d+)')
  if code ~= 0 or not id then
    fail('submit', string.format('sbatch %s failed (exit %s): %s', path, tostring(code),
                                 (err .. out):gsub('%s+$', '')))
  end
  return id
end

-- The records `scontrol show job ID` prints, one table per job (for an
-- array, one per task): JobId, ArrayTaskId, JobState, Restarts, ExitCode...
local function show_job(id)
  local out, err, code = run('scontrol show job ' .. shell_quote(id))
  if code ~= 0 then return nil, (err .. out):gsub('%s+$', '') end
  local records = {}
  for block in (out .. '\n\n'):gmatch('(.-)\n%s*\n') do
    if block:match('JobId=') then
      local r = {}
      for k, v in block:gmatch('(%w+)=(%S*)') do
        if r[k] == nil then r[k] = v end
      end
      records[#records + 1] = r
    end
  end
  return records
end

-- Waits until no task of job `id` is pending, running or completing, polling
-- squeue every `poll` seconds (default 2). Returns a table by array task
-- (a number; 0 for a job that is not an array) of {job_id, state, restarts,
-- exit_code} from `scontrol show job` (Slurm keeps finished jobs there for
-- MinJobAge, 300 s by default; no accounting database is needed). When
-- `timeout` seconds pass first, returns nil and what is still queued.
function M.wait(id, timeout, poll)
  id = tostring(id)
  if not id:match('^%d+$') then fail('wait', "expects a job id of digits, got '" .. id .. "'") end
  if type(timeout) ~= 'number' or timeout < 0 then fail('wait', 'timeout must be a number of seconds >= 0') end
  poll = poll or 2
  if type(poll) ~= 'number' or poll <= 0 then fail('wait', 'poll must be a number of seconds > 0') end
  need('wait')
  local t0 = os.time()
  while true do
    local out, err, code = run('squeue -h -j ' .. id .. ' -o "%i %T %r"')
    if code ~= 0 and not err:find('Invalid job id', 1, true) then
      fail('wait', 'squeue -j ' .. id .. ' failed (exit ' .. tostring(code) .. '): ' .. err:gsub('%s+$', ''))
    end
    local queued = code == 0 and out:gsub('%s+$', '') or ''
    if queued == '' then break end
    if os.difftime(os.time(), t0) >= timeout then
      return nil, string.format('job %s not finished after %d s: %s', id, timeout, queued:gsub('\n', '; '))
    end
    os.execute('sleep ' .. poll)
  end
  local records, err = show_job(id)
  if not records then fail('wait', 'scontrol show job ' .. id .. ' failed: ' .. err) end
  local tasks = {}
  for _, r in ipairs(records) do
    local task = tonumber(r.ArrayTaskId) or 0
    tasks[task] = {job_id = r.JobId, state = r.JobState, restarts = tonumber(r.Restarts),
                   exit_code = r.ExitCode}
  end
  return tasks
end

return M
