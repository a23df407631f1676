"""sqlglot's MySQL dialect, extended with StarRocks' account statements.

    CREATE USER [IF NOT EXISTS] user [auth] [DEFAULT ROLE r[, r]] [PROPERTIES ("k" = "v", ...)]
    ALTER USER [IF EXISTS] user [auth] [DEFAULT ROLE {NONE | ALL | r[, r]}]
    DROP USER [IF EXISTS] user
    CREATE ROLE [IF NOT EXISTS] r[, r]        DROP ROLE [IF EXISTS] r[, r]
    GRANT r[, r] TO [USER] user               REVOKE r[, r] FROM [USER] user
    SET PASSWORD [FOR user] = {'pw' | PASSWORD('pw')}
    SHOW [ALL] AUTHENTICATION [FOR user]      SHOW USERS | SHOW USER | SHOW ROLES | SHOW GRANTS [FOR user]
    GRANT r[, r] TO EXTERNAL GROUP 'g'        REVOKE r[, r] FROM EXTERNAL GROUP 'g'
    SHOW GRANTS FOR {ROLE r | EXTERNAL GROUP 'g'}

    CREATE SECURITY INTEGRATION [IF NOT EXISTS] name PROPERTIES ("k" = "v", ...)
    ALTER SECURITY INTEGRATION name SET ("k" = "v", ...)
    DROP SECURITY INTEGRATION [IF EXISTS] name
    SHOW SECURITY INTEGRATIONS                SHOW CREATE SECURITY INTEGRATION name
    CREATE GROUP PROVIDER [IF NOT EXISTS] name PROPERTIES ("k" = "v", ...)
    DROP GROUP PROVIDER [IF EXISTS] name
    SHOW GROUP PROVIDERS                      SHOW CREATE GROUP PROVIDER name
    ADMIN SET FRONTEND CONFIG ("k" = "v"[, ...])
    ADMIN SHOW FRONTEND CONFIG [LIKE 'pattern']

    auth: IDENTIFIED BY [PASSWORD] 'x' | IDENTIFIED WITH plugin [{BY | AS} 'x']
    user: name | 'name' | "name" | `name`, each optionally followed by @host (same forms, or %, or ['domain']);
          CURRENT_USER[()]

Everything else is sqlglot's own MySQL parsing.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.parsers.mysql import MySQLParser
from sqlglot.tokens import TokenType
from sqlglot.trie import new_trie

from fe.sql import syntax

_WORD_TOKENS = {TokenType.STRING, TokenType.IDENTIFIER, TokenType.VAR}


class FeParser(MySQLParser):
    STATEMENT_PARSERS: t.ClassVar = {
        **MySQLParser.STATEMENT_PARSERS,
        TokenType.CREATE: lambda self: self._parse_fe_create(),
        TokenType.ALTER: lambda self: self._parse_fe_alter(),
        TokenType.DROP: lambda self: self._parse_fe_drop(),
        TokenType.GRANT: lambda self: self._parse_fe_grant(),
        TokenType.REVOKE: lambda self: self._parse_fe_revoke(),
        TokenType.SET: lambda self: self._parse_fe_set(),
    }

    SHOW_PARSERS: t.ClassVar = {
        **MySQLParser.SHOW_PARSERS,
        "AUTHENTICATION": lambda self: self._parse_show_authentication(all_users=False),
        "ALL AUTHENTICATION": lambda self: self._parse_show_authentication(all_users=True),
        "USERS": lambda self: self.expression(syntax.ShowUsers()),
        "USER": lambda self: self.expression(syntax.ShowCurrentUser()),
        "ROLES": lambda self: self.expression(syntax.ShowRoles()),
        "GRANTS": lambda self: self._parse_show_grants(),
        "SECURITY INTEGRATIONS": lambda self: self.expression(syntax.ShowSecurityIntegrations()),
        "CREATE SECURITY INTEGRATION": lambda self: self.expression(
            syntax.ShowCreateSecurityIntegration(this=self._parse_object_name("a security integration name"))
        ),
        "GROUP PROVIDERS": lambda self: self.expression(syntax.ShowGroupProviders()),
        "CREATE GROUP PROVIDER": lambda self: self.expression(
            syntax.ShowCreateGroupProvider(this=self._parse_object_name("a group provider name"))
        ),
    }
    SHOW_TRIE: t.ClassVar = new_trie(key.split(" ") for key in SHOW_PARSERS)

    def _parse_statement(self) -> exp.Expr | None:
        # ADMIN is no keyword of sqlglot's: a bare word, so it cannot key STATEMENT_PARSERS.
        if self._curr is not None and self._curr.token_type == TokenType.VAR and self._curr.text.upper() == "ADMIN":
            self._advance()
            return self._parse_admin()
        return super()._parse_statement()

    def _warn_unsupported(self) -> None:
        # sqlglot logs every statement it falls back to Command for; the executor reports those to the client.
        pass

    # ----------------------------------------------------------------- projections keep their source text

    def _parse_projections(self) -> tuple[list[exp.Expr], list[exp.Expr] | None]:
        return self._parse_csv(self._parse_projection_with_text), None

    def _parse_projection_with_text(self) -> exp.Expr | None:
        """MySQL names a result column after the select expression as written (`@@session.autocommit`)."""
        start = self._curr
        expression = self._parse_expression()
        if expression is not None and start is not None and self._prev is not None:
            expression.meta["source_text"] = self._find_sql(start, self._prev)
        return expression

    # ----------------------------------------------------------------- statement entry points

    def _parse_fe_create(self) -> exp.Expr:
        if self._match_text_seq("USER"):
            return self._parse_create_user()
        if self._match_text_seq("SECURITY", "INTEGRATION"):
            exists = self._match_text_seq("IF", "NOT", "EXISTS")
            name = self._parse_object_name("a security integration name")
            return self.expression(
                syntax.CreateSecurityIntegration(this=name, exists=exists, properties=self._parse_properties_clause())
            )
        if self._match_text_seq("GROUP", "PROVIDER"):
            exists = self._match_text_seq("IF", "NOT", "EXISTS")
            name = self._parse_object_name("a group provider name")
            return self.expression(
                syntax.CreateGroupProvider(this=name, exists=exists, properties=self._parse_properties_clause())
            )
        if self._match_text_seq("ROLE"):
            exists = self._match_text_seq("IF", "NOT", "EXISTS")
            return self.expression(syntax.CreateRole(expressions=self._parse_names("a role name"), exists=exists))
        return self._parse_create()

    def _parse_fe_alter(self) -> exp.Expr:
        if self._match_text_seq("USER"):
            return self._parse_alter_user()
        if self._match_text_seq("SECURITY", "INTEGRATION"):
            name = self._parse_object_name("a security integration name")
            if not self._match(TokenType.SET):
                self.raise_error("Expected SET")
            return self.expression(syntax.AlterSecurityIntegration(this=name, properties=self._parse_property_pairs()))
        return self._parse_alter()

    def _parse_fe_drop(self) -> exp.Expr:
        if self._match_text_seq("USER"):
            exists = self._match_text_seq("IF", "EXISTS")
            return self.expression(syntax.DropUser(this=self._parse_user_spec(), exists=exists))
        if self._match_text_seq("ROLE"):
            exists = self._match_text_seq("IF", "EXISTS")
            return self.expression(syntax.DropRole(expressions=self._parse_names("a role name"), exists=exists))
        if self._match_text_seq("SECURITY", "INTEGRATION"):
            exists = self._match_text_seq("IF", "EXISTS")
            name = self._parse_object_name("a security integration name")
            return self.expression(syntax.DropSecurityIntegration(this=name, exists=exists))
        if self._match_text_seq("GROUP", "PROVIDER"):
            exists = self._match_text_seq("IF", "EXISTS")
            return self.expression(
                syntax.DropGroupProvider(this=self._parse_object_name("a group provider name"), exists=exists)
            )
        return self._parse_drop()

    def _parse_fe_grant(self) -> exp.Expr:
        roles = self._parse_role_list_before("TO")
        if roles is None:
            return self._parse_grant()
        if self._match_text_seq("ROLE"):
            return self.expression(syntax.GrantRoles(expressions=roles, role=self._parse_role_name()))
        if self._match_text_seq("EXTERNAL", "GROUP"):
            return self.expression(syntax.GrantRoles(expressions=roles, group=self._parse_group_name()))
        self._match_text_seq("USER")
        return self.expression(syntax.GrantRoles(expressions=roles, this=self._parse_user_spec()))

    def _parse_fe_revoke(self) -> exp.Expr:
        roles = self._parse_role_list_before("FROM")
        if roles is None:
            return self._parse_revoke()
        if self._match_text_seq("ROLE"):
            return self.expression(syntax.RevokeRoles(expressions=roles, role=self._parse_role_name()))
        if self._match_text_seq("EXTERNAL", "GROUP"):
            return self.expression(syntax.RevokeRoles(expressions=roles, group=self._parse_group_name()))
        self._match_text_seq("USER")
        return self.expression(syntax.RevokeRoles(expressions=roles, this=self._parse_user_spec()))

    def _parse_fe_set(self) -> exp.Expr:
        index = self._index
        if self._match_text_seq("PASSWORD") and self._match_set((TokenType.FOR, TokenType.EQ), advance=False):
            return self._parse_set_password()
        self._retreat(index)
        return self._parse_set()

    # ----------------------------------------------------------------- account statements

    def _parse_create_user(self) -> syntax.CreateUser:
        exists = self._match_text_seq("IF", "NOT", "EXISTS")
        user = self._parse_user_spec()
        auth = self._parse_auth_clause()
        default_roles = self._parse_names("a role name") if self._match_text_seq("DEFAULT", "ROLE") else []
        properties = self._parse_user_properties() if self._match_text_seq("PROPERTIES") else []
        return self.expression(
            syntax.CreateUser(this=user, exists=exists, auth=auth, default_roles=default_roles, properties=properties)
        )

    def _parse_alter_user(self) -> syntax.AlterUser:
        exists = self._match_text_seq("IF", "EXISTS")
        user = self._parse_user_spec()
        auth = self._parse_auth_clause()
        mode = None
        roles: list[str] = []
        if self._match_text_seq("DEFAULT", "ROLE"):
            if self._match_text_seq("NONE"):
                mode = "NONE"
            elif self._match_text_seq("ALL"):
                mode = "ALL"
            else:
                mode = "ROLES"
                roles = self._parse_names("a role name")
        if auth is None and mode is None:
            self.raise_error("Expected IDENTIFIED or DEFAULT ROLE")
        return self.expression(
            syntax.AlterUser(this=user, exists=exists, auth=auth, default_roles=roles, default_role_mode=mode)
        )

    def _parse_auth_clause(self) -> syntax.AuthClause | None:
        if not self._match_text_seq("IDENTIFIED"):
            return None
        if self._match_text_seq("BY"):
            keyword = "BY PASSWORD" if self._match_text_seq("PASSWORD") else "BY"
            return self.expression(syntax.AuthClause(keyword=keyword, this=self._parse_required_string()))
        if self._match_text_seq("WITH"):
            plugin = self._parse_word()
            if plugin is None:
                self.raise_error("Expected an authentication plugin name")
            if self._match_text_seq("BY"):
                keyword = "BY"
            elif self._match_text_seq("AS"):
                keyword = "AS"
            else:
                return self.expression(syntax.AuthClause(plugin=plugin))
            return self.expression(
                syntax.AuthClause(plugin=plugin, keyword=keyword, this=self._parse_required_string())
            )
        self.raise_error("Expected BY or WITH after IDENTIFIED")
        return None

    def _parse_user_properties(self) -> list[str]:
        """PROPERTIES ("key" = "value", ...): parsed so the executor can refuse it by name."""
        self._match_l_paren()
        keys: list[str] = []
        while True:
            key = self._parse_word()
            if key is None or not self._match(TokenType.EQ):
                self.raise_error('Expected "key" = "value" in PROPERTIES')
            if self._parse_word() is None and not self._match(TokenType.NUMBER):
                self.raise_error("Expected a property value")
            keys.append(t.cast(str, key))
            if not self._match(TokenType.COMMA):
                break
        self._match_r_paren()
        return keys

    def _parse_set_password(self) -> syntax.SetPassword:
        user = self._parse_user_spec() if self._match(TokenType.FOR) else None
        if not self._match(TokenType.EQ):
            self.raise_error("Expected =")
        if self._match_text_seq("PASSWORD"):
            self._match_l_paren()
            password = self._parse_required_string()
            self._match_r_paren()
        else:
            password = self._parse_required_string()
        return self.expression(syntax.SetPassword(this=user, expression=password))

    def _parse_show_authentication(self, all_users: bool) -> syntax.ShowAuthentication:
        user = self._parse_user_spec() if not all_users and self._match(TokenType.FOR) else None
        return self.expression(syntax.ShowAuthentication(this=user, all=all_users))

    def _parse_show_grants(self) -> syntax.ShowGrants:
        if not self._match(TokenType.FOR):
            return self.expression(syntax.ShowGrants())
        if self._match_text_seq("ROLE"):
            return self.expression(syntax.ShowGrants(role=self._parse_role_name()))
        if self._match_text_seq("EXTERNAL", "GROUP"):
            return self.expression(syntax.ShowGrants(group=self._parse_group_name()))
        return self.expression(syntax.ShowGrants(this=self._parse_user_spec()))

    # ----------------------------------------------------------------- integrations, group providers, config

    def _parse_admin(self) -> exp.Expr:
        if self._match(TokenType.SET) and self._match_text_seq("FRONTEND", "CONFIG"):
            return self.expression(syntax.AdminSetFrontendConfig(properties=self._parse_property_pairs()))
        if self._match(TokenType.SHOW) and self._match_text_seq("FRONTEND", "CONFIG"):
            like = self._parse_required_string() if self._match(TokenType.LIKE) else None
            return self.expression(syntax.AdminShowFrontendConfig(like=like))
        self.raise_error("Expected SET FRONTEND CONFIG or SHOW FRONTEND CONFIG after ADMIN")
        return exp.Command(this="ADMIN")

    def _parse_properties_clause(self) -> list[tuple[str, str]]:
        if not self._match_text_seq("PROPERTIES"):
            self.raise_error("Expected PROPERTIES")
        return self._parse_property_pairs()

    def _parse_property_pairs(self) -> list[tuple[str, str]]:
        """( "key" = "value", ... ): the pairs as written; a value may also be a number or a bare word."""
        self._match_l_paren()
        pairs: list[tuple[str, str]] = []
        while True:
            key = self._parse_word()
            if key is None or not self._match(TokenType.EQ):
                self.raise_error('Expected "key" = "value"')
            if self._match(TokenType.NUMBER):
                value: str | None = self._prev.text
            else:
                value = self._parse_word()
            if value is None:
                self.raise_error("Expected a property value")
            pairs.append((t.cast(str, key), t.cast(str, value)))
            if not self._match(TokenType.COMMA):
                break
        self._match_r_paren()
        return pairs

    def _parse_object_name(self, what: str) -> str:
        name = self._parse_word()
        if name is None:
            self.raise_error(f"Expected {what}")
        return t.cast(str, name)

    def _parse_group_name(self) -> str:
        return self._parse_object_name("an external group name")

    def _parse_role_name(self) -> str:
        name = self._parse_word()
        if name is None:
            self.raise_error("Expected a role name")
        return t.cast(str, name)

    # ----------------------------------------------------------------- pieces

    def _parse_word(self) -> str | None:
        """A name: quoted string, `identifier`, or a bare word (keywords allowed where they are not reserved)."""
        token = self._curr
        if token is None:
            return None
        if token.token_type in _WORD_TOKENS or token.token_type in self.ID_VAR_TOKENS:
            self._advance()
            return token.text
        return None

    def _parse_required_string(self) -> str:
        if not self._match(TokenType.STRING):
            self.raise_error("Expected a quoted string")
        return self._prev.text

    def _parse_names(self, what: str) -> list[str]:
        names = []
        while True:
            name = self._parse_word()
            if name is None:
                self.raise_error(f"Expected {what}")
            names.append(t.cast(str, name))
            if not self._match(TokenType.COMMA):
                return names

    def _parse_role_list_before(self, keyword: str) -> list[str] | None:
        """`r1, r2 TO` (or FROM): the roles of a role grant; None (nothing consumed) if this is not one."""
        index = self._index
        names = []
        while True:
            name = self._parse_word()
            if name is None:
                break
            names.append(name)
            if not self._match(TokenType.COMMA):
                break
        if names and self._match_text_seq(keyword):
            return names
        self._retreat(index)
        return None

    def _parse_user_spec(self) -> syntax.UserSpec:
        if self._match(TokenType.CURRENT_USER):
            if self._match(TokenType.L_PAREN):
                self._match_r_paren()
            return self.expression(syntax.UserSpec(this="CURRENT_USER", current=True))
        name = self._parse_word()
        if name is None:
            self.raise_error("Expected a user name")
        host = None
        if self._curr is not None and self._curr.token_type == TokenType.PARAMETER and self._curr.text == "@":
            self._advance()
            if self._match(TokenType.MOD):
                host = "%"
            elif self._match(TokenType.L_BRACKET):
                # StarRocks' domain identity: 'name'@['domain'], stored as "[domain]".
                host = f"[{self._parse_required_string()}]"
                if not self._match(TokenType.R_BRACKET):
                    self.raise_error("Expected ] after the domain")
            else:
                host = self._parse_word()
                if host is None:
                    self.raise_error("Expected a host after @")
        return self.expression(syntax.UserSpec(this=name, host=host))


class FeDialect(MySQL):
    Parser = FeParser
