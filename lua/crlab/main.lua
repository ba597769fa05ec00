-- The entry file that scripts/crlab hands to luajit; everything after it
-- on the command line reaches crlab.cli untouched, as the global arg.
require('crlab.cli')(arg)
