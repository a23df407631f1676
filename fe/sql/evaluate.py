"""Values of the constant expressions clients select and set: literals, @@system and @user variables, USER(),
CURRENT_USER(), DATABASE(), CONNECTION_ID(), VERSION(), CONCAT and integer arithmetic. Anything else is
reported as unsupported (ERR 1064)."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from fe.sql.results import SqlError, syntax_error
from fe.sql.session import Session

SystemVariableReader = Callable[[str, str | None], object]  # (name, "session" | "global" | None) -> value


class Evaluator:
    def __init__(self, session: Session, read_system_variable: SystemVariableReader, server_version: str) -> None:
        self._session = session
        self._read_system_variable = read_system_variable
        self._server_version = server_version

    def value(self, node: exp.Expr) -> object:
        if isinstance(node, exp.Alias):
            return self.value(node.this)
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if isinstance(node, exp.Literal):
            return _literal(node)
        if isinstance(node, exp.Null):
            return None
        if isinstance(node, exp.Boolean):
            return 1 if node.this else 0
        if isinstance(node, exp.Var):
            return node.name
        if isinstance(node, exp.Neg):
            inner = self.value(node.this)
            if isinstance(inner, int):
                return -inner
            raise self._unsupported(node)
        if isinstance(node, exp.SessionParameter):
            return self._read_system_variable(node.name.lower(), (node.args.get("kind") or None))
        if isinstance(node, exp.Parameter):
            return self._session.variables.get("@" + node.name)
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul)):
            return self._arithmetic(node)
        if isinstance(node, exp.Concat):
            parts = [self.value(part) for part in node.expressions]
            return None if any(part is None for part in parts) else "".join(str(part) for part in parts)
        return self._function(node)

    def _function(self, node: exp.Expr) -> object:
        session = self._session
        if isinstance(node, exp.CurrentUser):
            return session.current_user
        if isinstance(node, exp.CurrentSchema):
            return session.database or None
        if isinstance(node, exp.CurrentVersion):
            return self._server_version
        if isinstance(node, exp.Anonymous) and not node.expressions:
            name = str(node.this).upper()
            if name in ("USER", "SESSION_USER", "SYSTEM_USER"):
                return session.login_user
            if name == "CONNECTION_ID":
                return session.connection_id
            if name in ("DATABASE", "SCHEMA"):
                return session.database or None
            if name == "CURRENT_ROLE":
                return "NONE"
        raise self._unsupported(node)

    def _arithmetic(self, node: exp.Binary) -> object:
        left, right = self.value(node.this), self.value(node.expression)
        if left is None or right is None:
            return None
        if not (isinstance(left, int) and isinstance(right, int)):
            raise self._unsupported(node)
        if isinstance(node, exp.Add):
            return left + right
        if isinstance(node, exp.Sub):
            return left - right
        return left * right

    @staticmethod
    def _unsupported(node: exp.Expr) -> SqlError:
        return syntax_error(node.meta.get("source_text") or node.sql(dialect="mysql"))


def _literal(node: exp.Literal) -> object:
    if node.is_string:
        return node.name
    text = node.name
    try:
        return int(text)
    except ValueError:
        return text  # decimals and floats travel as their text, as MySQL sends them
