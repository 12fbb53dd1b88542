"""Request and response bodies of the auth endpoints."""

from marshmallow import fields, pre_load, validate

from ..schemas import BaseSchema, text


class SignupIn(BaseSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = text(128, required=True, min_length=8)
    name = text(100)

    @pre_load
    def _trim_email(self, data, **_kwargs):
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip()}
        return data


class LoginIn(BaseSchema):
    # Not validated as an email: any mismatch is the same 401, never a hint.
    email = text(254, required=True)
    password = text(1024, required=True)


class LogoutIn(BaseSchema):
    # Any value: logout must revoke the access token before judging it (a bad one is a 401 after that).
    refresh_token = fields.Raw(allow_none=True, metadata={"type": "string"})


class UserOut(BaseSchema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class TokenPairOut(BaseSchema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Access token lifetime in seconds."})


class SignupOut(TokenPairOut):
    """The new account and its first token pair."""

    user = fields.Nested(UserOut, required=True)
