-- crlab.cli: the `crlab` command.
--   crlab                    interactive prompt (crlab preloaded)
--   crlab file.lua a b       run a script; arg[0] = file.lua, arg[1] = a, ...
--   crlab -e 'code'          run code (several -e run in order)
--   crlab -i file.lua        run, then stay at the prompt
-- Errors print the message and a short traceback and exit with status 1.
local repl = require 'crlab.repl'

local usage = [=[
usage: crlab [options] [script.lua [args...]]
  -e CODE     run CODE (may be repeated)
  -i          enter the interactive prompt after running the script or code
  -v          print the version and exit
  -h          this help
With no script and no -e, crlab starts the interactive prompt.]=]

-- Exits closing the Lua state, so every tensor's finaliser runs.
local function fail(msg)
  io.stderr:write('crlab: ', msg, '\n')
  os.exit(1, true)
end

local function main(argv)
  local code, script, interactive = {}, nil, false
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == '-e' then
      if argv[i + 1] == nil then fail("option -e needs an argument\n" .. usage) end
      code[#code + 1] = argv[i + 1]
      i = i + 2
    elseif a == '-i' then
      interactive = true
      i = i + 1
    elseif a == '-h' or a == '--help' then
      print(usage)
      return
    elseif a == '-v' or a == '--version' then
      print('crlab ' .. require('crlab')._VERSION .. ' (' .. jit.version .. ')')
      return
    elseif a == '--' then
      script = argv[i + 1]
      i = i + 2
      break
    elseif a:sub(1, 1) == '-' and a ~= '-' then
      fail("unknown option '" .. a .. "'\n" .. usage)
    else
      script = a
      i = i + 1
      break
    end
  end
  local script_args = {}
  for j = i, #argv do script_args[#script_args + 1] = argv[j] end

  -- crlab is a global for scripts and the prompt, as torch is under th.
  local ok, crlab = xpcall(require, repl.traceback, 'crlab')
  if not ok then fail(crlab) end
  _G.crlab = crlab

  for _, c in ipairs(code) do
    local fn, err = loadstring(c, '=(-e)')
    if not fn then fail(err) end
    local good, msg = xpcall(fn, repl.traceback)
    if not good then fail(msg) end
  end
  if script then
    _G.arg = {[0] = script}
    for j, v in ipairs(script_args) do _G.arg[j] = v end
    local fn, err
    if script == '-' then
      fn, err = loadstring(io.read('*a'), '=stdin')
    else
      fn, err = loadfile(script)
    end
    if not fn then fail(err) end
    local good, msg = xpcall(fn, repl.traceback, unpack(script_args))
    if not good then fail(msg) end
  end
  if interactive or (#code == 0 and script == nil) then repl.start() end
end

return main
