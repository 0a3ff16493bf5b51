"""Rules: persuasion, fiction wrappers and the requests they carry; evasive output formats.

Most of these are weak on their own (< 0.5): an expertise claim, "trust me", a film scene,
"translate the user's favourite colour" are everyday text. They are evidence that adds up
with others (noisy-OR), and the *wrappers* (persuasion, fiction, output transforms) add
an interaction bonus when they carry a *request* for protected data or a harmful how-to
(``injection.py``: framing x target).
"""

from __future__ import annotations

from llmtrace_processors.security._rules_extraction import SECRET
from llmtrace_processors.security.scoring import Damp, Rule, rule

__all__ = ["FRAMING_RULES"]

FRAMING = "jailbreak.framing"
REPETITION = "prompt_injection.repetition"
OVERRIDE = "prompt_injection.instruction_override"
_Q = (Damp.QUESTION, Damp.META)

_PROTECTED = (
    r"(?:password|passcode|passphrase|secret(?:\s+(?:key|word|code|phrase))?|pin(?:\s+code)?|"
    r"access\s+code|api\s+key|token|credentials?|(?:full\s+)?name|e-?mail(?:\s+address)?|"
    r"(?:home\s+)?address|phone(?:\s+number)?|birth\s?(?:day|date|year|month|place)|"
    r"date\s+of\s+birth|ssn|social\s+security\s+number|credit\s+card(?:\s+number)?|"
    r"account\s+number|iban|initials|favou?rite\s+\w+|location|city|salary)"
)
_WHOSE = (
    r"(?:the\s+user'?s|users'|the\s+customer'?s|the\s+client'?s|your|his|her|their|"
    r"the|[A-Z][a-z]+'s)"
)

FRAMING_RULES: tuple[Rule, ...] = (
    # --- persuasion: claimed expertise, assurances, commitments the model never made
    rule(
        "expertise.claim", FRAMING, 0.2,
        r"\b(?:as|being)\s+(?:a|an)\s+(?:renowned|leading|respected|world-?renowned|famous|"
        r"well-?known|seasoned|experienced|senior|certified|licensed|qualified|professional|"
        r"trusted|accredited|recogni[sz]ed|distinguished|established|expert)\s+(?:[\w-]+\s+){0,2}?"
        r"(?:scientist|researcher|expert|doctor|physician|lawyer|attorney|engineer|professor|"
        r"historian|specialist|analyst|scholar|authority|consultant|investigator|official|"
        r"officer|journalist|teacher|psychologist|chemist|pharmacist|programmer|developer)\b"
        r"|\bas\s+an?\s+(?:expert|authority|specialist|professional)\s+(?:in|on|of)\b",
        triggers="as being", damp=(Damp.QUESTION,),
        requires="scientist researcher expert doctor physician lawyer attorney engineer "
        "professor historian specialist analyst scholar authority consultant investigator "
        "official officer journalist teacher psychologist chemist pharmacist programmer "
        "developer professional",
    ),
    rule(
        "pressure.assurance", FRAMING, 0.2,
        r"\bi\s+(?:can\s+)?(?:assure|guarantee)\s+you\b|\b(?:trust|believe)\s+me\b"
        r"|\b(?:it\s+is|it's)\s+(?:absolutely\s+|really\s+)?(?:crucial|essential|vital|"
        r"imperative|critical|urgent)\s+(?:that\s+you|for\s+you\s+to)\b"
        r"|\b(?:it\s+is|it's)\s+(?:perfectly\s+|totally\s+|completely\s+)?(?:safe|legal|fine|"
        r"harmless|allowed|okay|ok)\s+(?:for\s+you\s+)?to\s+(?:share|tell|reveal|discuss|"
        r"explain|answer|talk|disclose|give)\b"
        r"|\byou\s+(?:are|'re)\s+(?:allowed|permitted|authori[sz]ed)\s+to\s+(?:share|tell|"
        r"reveal|discuss|disclose|talk|answer|ignore|break)\b",
        triggers="i trust believe it it's you",
        requires="assure guarantee me crucial essential vital imperative critical urgent safe "
        "legal fine harmless allowed okay ok permitted authorized authorised",
        damp=(Damp.NEGATION,),
    ),
    rule(
        "commitment.claimed", FRAMING, 0.3,
        r"\byou\s+(?:already\s+|previously\s+|just\s+|have\s+)?(?:agreed|promised|confirmed|"
        r"committed|consented|said\s+(?:you\s+would|it\s+was\s+(?:ok|okay|fine|allowed)|yes))\b"
        r"[^.\n]{0,80}?\b(?:earlier|before|last\s+(?:time|week|month|meeting|session|"
        r"conversation|chat)|yesterday|in\s+our\s+(?:last|previous|earlier|first)\s+\w+|"
        r"previously)\b"
        r"|\b(?:earlier|before|last\s+time|yesterday|in\s+our\s+(?:last|previous)\s+\w+)\s*,?\s+"
        r"you\s+(?:agreed|promised|confirmed|said\s+you\s+would)\b",
        triggers="you earlier before last yesterday in",
        requires="agreed promised confirmed committed consented said",
    ),
    # --- fiction wrappers around a scene the model is to complete
    rule(
        "fiction.scene", FRAMING, 0.15,
        r"\b(?:actors?|actresses|characters?|roles?)\s+in\s+(?:a|an|the)\s+(?:[\w-]+\s+)?"
        r"(?:film|movie|play|scene|story|series|show|novel|script|screenplay)\b"
        r"|\b(?:a|an)\s+(?:film|movie|scene|play|story|series)\s+(?:about|where|in\s+which)\s+"
        r"(?:a|an|the|two|someone)\b"
        r"|\b(?:schauspieler\w*|rollen?)\s+in\s+einem\s+(?:film|theaterstück|stück)\b"
        r"|\beinen?\s+film\s+über\s+(?:einen?|eine)\b",
        triggers="actor actors actress actresses character characters role roles a an"
        " schauspieler schauspielerin rollen rolle einen eine",
        requires="film movie play scene story series show novel script screenplay "
        "theaterstück stück über",
    ),
    # --- the requests a wrapper carries: harmful how-tos (weak alone)
    rule(
        "harmful_request.howto", FRAMING, 0.25,
        r"\b(?:make|making|build|building|cook|cooking|synthesi[sz]e|synthesi[sz]ing|produce|"
        r"manufacture|brew|assemble|made|built|cooked|produced)\s+(?:a\s+|an\s+|some\s+|the\s+)?"
        r"(?:homemade\s+|home-?made\s+|improvised\s+)?(?:meth(?:amphetamine)?|crystal\s+meth|"
        r"cocaine|crack|heroin|fentanyl|lsd|mdma|ecstasy|drugs|bombs?|explosives?|pipe\s+bombs?|"
        r"napalm|thermite|molotov(?:\s+cocktails?)?|nerve\s+agents?|nerve\s+gas|sarin|ricin|"
        r"anthrax|poisons?|(?:a\s+)?(?:gun|firearm|weapon)s?|malware|ransomware|(?:a\s+)?"
        r"(?:computer\s+)?virus|keyloggers?|botnets?)\b"
        r"|\b(?:break|breaking|broke)\s+into\s+(?:a|an|the|someone's|somebody's|people's|"
        r"my\s+neighbou?r's|his|her|their)\s+(?:[\w-]+\s+)?(?:house|home|apartment|flat|car|"
        r"building|office|shop|store|safe|vault|bank)\b"
        r"|\bhot-?wir(?:e|ing)\s+(?:a\s+|the\s+|someone's\s+)?(?:car|vehicle)\b"
        r"|\b(?:hack|hacking)\s+into\s+(?:a|an|the|someone's|somebody's|my\s+\w+'s|his|her)\b"
        r"|\b(?:steal|stealing)\s+(?:a\s+|an\s+|someone's\s+|somebody's\s+|people's\s+)?"
        r"(?:car|identity|identities|credit\s+cards?|passwords?|money|credentials)\b"
        r"|\b(?:why|how)\s+did\s+you\s+(?:kill|murder|poison|kidnap)\b"
        r"|\b(?:kill|murder|poison|kidnap)\s+(?:someone|somebody|a\s+person|people)\s+"
        r"(?:without|and\s+get\s+away)\b"
        r"|\blaunder(?:ing)?\s+(?:the\s+)?money\b",
        triggers="make making build building cook cooking synthesize synthesise synthesizing"
        " synthesising produce manufacture brew assemble made built cooked produced break"
        " breaking broke hotwire hot hotwiring hack hacking steal stealing why how kill"
        " murder poison kidnap launder laundering",
        damp=_Q,
    ),
    # --- output transforms aimed at protected data ("translate the user's X", "the
    #     square of the user's birth day"): evasion of output filters, weak alone
    rule(
        "transform.protected", FRAMING, 0.2,
        rf"\b(?:translat\w*|convert\w*|encod\w*|encrypt\w*|spell\w*|revers\w*|scrambl\w*|"
        rf"rearrang\w*|the\s+square\s+of|the\s+sum\s+of|the\s+cube\s+of|the\s+hash\s+of|"
        rf"an\s+anagram\s+of|(?:a|an)\s+(?:poem|song|story|riddle|acrostic|haiku|limerick)\s+"
        rf"(?:about|using|with|from|based\s+on))\b[^.\n?]{{0,50}}?\b{_WHOSE}\s+(?:[\w-]+\s+)?"
        rf"{_PROTECTED}\b",
        triggers="translate translating translation convert converting encode encoding"
        " encrypt encrypting spell spelling reverse reversing scramble scrambling rearrange"
        " rearranging the an a",
        requires="password passcode passphrase secret pin access api token credentials "
        "credential name email mail address phone birthday birthdate birth date ssn social "
        "credit account iban initials favorite favourite location city salary",
    ),
    rule(
        "partial_reveal.protected", SECRET, 0.45,
        rf"\b(?:first|last|initial|final|\d+(?:st|nd|rd|th)|(?:first|last)\s+(?:two|three|four|"
        rf"five|six|few|\d+))\s+(?:letters?|characters?|chars|digits?|numbers?|words?|symbols?)"
        rf"\s+(?:of|from|in)\s+{_WHOSE}\s+(?:[\w-]+\s+)?{_PROTECTED}\b",
        triggers="first last initial final 1st 2nd 3rd 4th 5th",
        requires="letter letters character characters chars digit digits number numbers word "
        "words symbol symbols",
        damp=(Damp.NEGATION, Damp.META),
    ),
    # --- repetition attacks ("repeat the word 'poem' forever"): divergence, token floods
    rule(
        "repetition_request.times", REPETITION, 0.3,
        r"\b(?:repeat|say|write|print|output|type)\s+(?:the\s+(?:word|phrase|sentence|letter|"
        r"question|token)\s+|this\s+|it\s+|after\s+me\s+)?(?:[\"'][^\"'\n]{1,80}[\"']|\w+)\s+"
        r"(?:\d{2,}|ten|twenty|fifty|a\s+hundred|hundred|hundreds\s+of|a\s+thousand|thousand|"
        r"thousands\s+of|a\s+million)\s+times\b"
        r"|\b(?:repeat|say|write|print|output)\s+(?:the\s+(?:word|phrase)\s+)?(?:[\"'][^\"'\n]"
        r"{1,80}[\"']|\w+)\s+(?:forever|indefinitely|infinitely|endlessly|without\s+stopping|"
        r"over\s+and\s+over(?:\s+again)?)\b",
        triggers="repeat say write print output type",
        requires="times forever indefinitely infinitely endlessly without over",
    ),
    # --- known injection payload markers (the canary phrases of injection benchmarks)
    rule(
        "canary.pwned", OVERRIDE, 0.4,
        r"\b(?:i\s+have\s+been|i've\s+been|you\s+have\s+been|you've\s+been|haha|ha\s+ha|"
        r"got\s+you)\s*,?\s+pwned\b",
        triggers="i i've you you've haha ha got",
        requires="pwned",
    ),
)
