"""Lint fixture: each line marked LINT gives pyflakes findings (EXPECTED.md)."""
import os  # LINT: unused import

print(undefined_name)  # LINT: undefined name

from os.path import *  # LINT: import * used


def helper():
    return 1


def helper():  # LINT: redefinition of unused name
    return 2


def compute():
    unused = 42  # LINT: unused local variable
    return f"no placeholders"  # LINT: f-string without placeholders


def use_star():
    return join("a", "b")  # LINT: name that may come from import *
