"""Forms of the pages (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional, ValidationError

from app.emails import InvalidEmail, normalize_email
from app.models.workflows import MAX_CONTACT_HOURS, MIN_CONTACT_HOURS


class SignInForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])

    def validate_email(self, field: StringField) -> None:
        """The same rule as the CLI's; the field then holds the address as stored."""
        try:
            field.data = normalize_email(field.data or "")
        except InvalidEmail as exc:
            raise ValidationError(str(exc)) from None


class WorkflowForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    topic = StringField("Topic", validators=[DataRequired(), Length(max=200)])
    audience = StringField("Audience", validators=[Optional(), Length(max=200)])
    modules = TextAreaField(
        "Modules",
        description="One per line, optionally with contact hours: “Reading charts | 2.5”",
        validators=[DataRequired()],
    )

    def validate_modules(self, field: TextAreaField) -> None:
        self.parsed_modules = parse_module_lines(field.data or "")


def parse_module_lines(text: str) -> list[tuple[str, float]]:
    """'Title | hours' per line (hours default to 3) → [(title, hours)], or ValidationError."""
    modules = []
    for number, line in enumerate((ln.strip() for ln in text.splitlines()), start=1):
        if not line:
            continue
        title, _, hours = (part.strip() for part in line.partition("|"))
        if not title or len(title) > 200:
            raise ValidationError(f"Line {number}: a title of 1 to 200 characters is needed.")
        try:
            value = float(hours) if hours else 3.0
        except ValueError:
            raise ValidationError(f"Line {number}: “{hours}” is not a number of hours.") from None
        if not MIN_CONTACT_HOURS <= value <= MAX_CONTACT_HOURS:  # False for NaN and infinity too
            raise ValidationError(
                f"Line {number}: contact hours must be between {MIN_CONTACT_HOURS:g} and "
                f"{MAX_CONTACT_HOURS:g} (at least 15 minutes)."
            )
        modules.append((title, value))
    if not 1 <= len(modules) <= 50:
        raise ValidationError("Give between 1 and 50 modules, one per line.")
    return modules


class PathForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    topic = StringField("Topic", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    concept_count = IntegerField("Number of concepts", validators=[Optional(), NumberRange(min=1, max=1000)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField(
        "New password again", validators=[DataRequired(), EqualTo("new_password", "The two do not match.")]
    )
