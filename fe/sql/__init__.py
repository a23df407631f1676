"""SQL: the fe dialect (sqlglot's MySQL plus StarRocks' account statements) and the statement executor."""

from fe.sql.executor import DATABASES, Executor
from fe.sql.results import Column, OkResult, Result, ResultSet, SqlError, syntax_error
from fe.sql.session import Session, Warning_
from fe.sql.variables import SERVER_VERSION

__all__ = [
    "DATABASES",
    "SERVER_VERSION",
    "Column",
    "Executor",
    "OkResult",
    "Result",
    "ResultSet",
    "Session",
    "SqlError",
    "Warning_",
    "syntax_error",
]
