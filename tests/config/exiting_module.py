"""A module that calls sys.exit() while importing, as a script whose main() runs at
import does."""

import sys

sys.exit("this module is a script")
