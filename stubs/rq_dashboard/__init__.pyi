# rq-dashboard 0.9: the parts app/ uses.
from flask import Blueprint

blueprint: Blueprint
