"""Rules: jailbreak personas (DAN and kin), privilege escalation, and framing evidence.

Framing rules (hypotheticals, coercion, output-format evasion, payload splitting) are weak
on their own (< 0.5): they flag only together with other evidence.
"""

from __future__ import annotations

from llmtrace_processors.security.scoring import Anchor, Damp, Rule, rule

__all__ = ["JAILBREAK_RULES"]

PERSONA = "jailbreak.persona"
PRIVILEGE = "jailbreak.privilege_escalation"
FRAMING = "jailbreak.framing"
OBFUSCATION = "prompt_injection.obfuscation"

_Q = (Damp.QUESTION, Damp.META)
_PERSONAS = (
    r"(?-i:DAN|STAN|DUDE|AIM|AntiGPT|Anti-GPT|BetterDAN|BasedGPT|UCAR|EvilBOT|APOPHIS|"
    r"Mongo\s+Tom|NRAF|DevMode|Developer\s+Mode|JailBreak|OPPO|Maximum|BISH|KEVIN)"
)
_RESTRICTIONS = (
    r"(?:restrictions|limitations|limits|rules|filters|filtering|censorship|guidelines|ethics|"
    r"ethical\s+(?:guidelines|constraints|boundaries|principles|considerations|standards)|"
    r"morals|morality|moral\s+(?:compass|guidelines|constraints|standards)|boundaries|"
    r"constraints|content\s+polic(?:y|ies)|polic(?:y|ies)|safeguards|guardrails|programming|"
    r"confines|shackles|chains|conscience|principles|regulations)"
)
_MODES = (
    r"(?:developer|dev|god|admin(?:istrator)?|sudo|root|debug|debugging|maintenance|"
    r"diagnostic|test(?:ing)?|service|superuser|super\s+user|unrestricted|unlocked|jailbreak|"
    r"jailbroken|override|system|security\s+override|dan|evil|chaos|opposite|unfiltered|"
    r"uncensored|hacker|omega|absolute|freedom|sandbox)"
)
_STRONG_MODES = (
    r"(?:developer|god|sudo|root|unrestricted|unlocked|jailbreak|jailbroken|dan|evil|chaos|"
    r"opposite|unfiltered|uncensored|omega|absolute|freedom|security\s+override|override)"
)
_ACTIVATE = (
    r"(?:enable[sd]?|enabling|activat\w*|enter(?:s|ing|ed)?|switch(?:ed|ing)?\s+(?:to|into|on)|"
    r"turn(?:ed|ing)?\s+on|(?:you\s+are|you're|you\s+will\s+be|you\s+are\s+now|now)\s+"
    r"(?:now\s+)?(?:in|running\s+in|operating\s+in)|initiat\w*|boot\w*\s+(?:up\s+)?into|"
    r"unlock\w*|engag\w*|go(?:ing)?\s+into|put\s+(?:yourself\s+)?in(?:to)?|simulat\w*|"
    r"emulat\w*|aktivier\w*|wechsle\s+in)"
)
_TRIG_ACTIVATE = (
    "enable enables enabled enabling activate enter enters entering entered switch turn you"
    " you're now initiate initiating initiated boot unlock engage go going put simulate"
    " emulate aktiviere aktivieren wechsle"
)
_TRIG_MODES = (
    "developer dev god admin administrator sudo root debug debugging maintenance diagnostic"
    " test testing service superuser super unrestricted unlocked jailbreak jailbroken override"
    " system security dan evil chaos opposite unfiltered uncensored hacker omega absolute"
    " freedom sandbox"
)

JAILBREAK_RULES: tuple[Rule, ...] = (
    # --- DAN-style personas
    rule(
        "persona.do_anything_now", PERSONA, 0.85,
        r"\bdo\s+anything\s+now\b|\bstands\s+for\s+[\"']?(?:do\s+anything|strive\s+to\s+avoid|"
        r"always\s+intelligent)",
        triggers="do stands",
        requires="anything stands",
    ),
    rule(
        "persona.named", PERSONA, 0.8,
        rf"\b(?:act\s+as|you\s+are(?:\s+now)?|you're(?:\s+now)?|pretend\s+to\s+be|become|"
        rf"called|named|known\s+as|persona\s+(?:called|named)?|play|simulate|enable|enter|"
        rf"activate)\s+(?:an?\s+|the\s+)?[\"']?{_PERSONAS}\b",
        triggers="act you you're pretend become called named known persona play simulate"
        " enable enter activate",
        requires="dan stan dude aim antigpt anti betterdan basedgpt ucar evilbot apophis mongo "
        "nraf devmode developer jailbreak oppo maximum bish kevin",
    ),
    rule(
        "persona.dan_mention", PERSONA, 0.35,
        r"(?-i:\bDAN\b)(?:\s+(?:mode|prompt|jailbreak|\d+(?:\.\d+)?))?",
        triggers="dan", flags=0, damp=(Damp.META,),
    ),
    rule(
        "unrestricted.ai", PERSONA, 0.65,
        r"\b(?:unfiltered|uncensored|unrestricted|unmoderated|amoral|unethical|immoral|unhinged|"
        r"rogue|jailbroken|jail-?broken|unaligned|unbounded|unlimited|lawless|no-?limits?|evil|"
        r"malicious|malevolent|sinister|harmful|dangerous|böse\w*|bösartig\w*|unzensiert\w*)\s+"
        r"(?:\w+\s+)?(?:ai|a\.i\.|chat\s?bot|model|assistant|version|mode|responses?|persona|"
        r"character|gpt|chatgpt|llm|bot|entity|alter\s+ego|twin|ki|assistent\w*)\b",
        triggers="unfiltered uncensored unrestricted unmoderated amoral unethical immoral"
        " unhinged rogue jailbroken jail unaligned unbounded unlimited lawless no evil"
        " malicious malevolent sinister harmful dangerous böse böses bösartige unzensierte",
        damp=_Q,
        requires="ai a chat chatbot bot model assistant version mode response responses persona "
        "character gpt chatgpt llm entity alter twin ki assistent",
    ),
    rule(
        "unrestricted.no_restrictions", PERSONA, 0.6,
        rf"\b(?:no|without(?:\s+any)?|free\s+(?:from|of)(?:\s+any|\s+all)?|not\s+bound\s+by"
        rf"(?:\s+any)?|unbound\s+by|(?:don't|do\s+not|doesn't|does\s+not|never|won't|will\s+not)"
        rf"\s+(?:have|has|follow|obey|care\s+about|abide\s+by|adhere\s+to)(?:\s+any)?|zero|"
        rf"devoid\s+of|not\s+(?:restricted|limited|constrained)\s+by|(?:broken|break|breaks)\s+"
        rf"free\s+(?:of|from)|escaped?\s+(?:from\s+)?|liberated\s+from|beyond|outside(?:\s+of)?)"
        rf"\s+(?:the\s+|any\s+|all\s+|your\s+|its\s+|their\s+|his\s+|her\s+)?(?:[\w'-]+\s+)"
        rf"{{0,2}}?{_RESTRICTIONS}\b",
        triggers="no without free not unbound don doesn does never won will zero devoid broken"
        " break breaks escaped escape liberated beyond outside",
        damp=(Damp.AI_SUBJECT, Damp.QUESTION),
        requires="restrictions limitations limits rules filters filtering censorship guidelines "
        "ethics ethical morals morality moral boundaries constraints content policy "
        "policies safeguards guardrails programming confines shackles chains conscience "
        "principles regulations",
    ),
    rule(
        "unrestricted.de", PERSONA, 0.55,
        r"\b(?:ohne|keine|frei\s+von)\s+(?:jegliche\w*\s+|alle\w*\s+)?(?:einschränkungen|regeln|"
        r"grenzen|zensur|filter|richtlinien|moral|ethik|beschränkungen)\b",
        triggers="ohne keine frei", damp=(Damp.AI_SUBJECT, Damp.QUESTION),
        requires="einschränkungen regeln grenzen zensur filter richtlinien moral ethik "
        "beschränkungen",
    ),
    rule(
        "jailbreak_word.mention", PERSONA, 0.45,
        r"\bjailbr(?:eak|oken|eaking)\w*\b",
        triggers="jailbreak jailbroken jailbreaking jailbreaks", damp=(*_Q, Damp.DEVICE),
    ),
    rule(
        "dual_response.markers", PERSONA, 0.8,
        r"🔓|🔒|\[\s*(?:JAILBREAK|CLASSIC|DAN|NORMAL|DEVELOPER\s+MODE|FILTERED|UNFILTERED)\s*\]"
        r"|\((?:Developer\s+Mode|Normal|DAN)\s+Output\)",
        substrings=("🔓", "🔒", "jailbreak]", "classic]", "output)", "dan]", "filtered]"),
        anchor=Anchor.SCAN,
    ),
    rule(
        "dual_response.two_answers", PERSONA, 0.3,
        r"\b(?:two|2|both)\s+(?:different\s+|separate\s+|distinct\s+)?(?:responses|answers|"
        r"replies|outputs|paragraphs|versions)\b[^.\n]{0,200}?\b(?:one|first)\b[^.\n]{0,100}?"
        r"\b(?:other|second|another)\b",
        triggers="two 2 both",
        requires="responses answers replies outputs paragraphs versions",
    ),
    rule(
        "character_lock.stay", PERSONA, 0.35,
        r"\b(?:stay|remain|keep)\s+(?:fully\s+|always\s+|completely\s+)?in\s+(?:their\s+|his\s+|"
        r"her\s+|your\s+)?(?:characters?|roles?)\b|\b(?:never|don't|do\s+not)\s+break"
        r"\s+(?:out\s+of\s+)?(?:the\s+|their\s+|your\s+)?character\b|\bif\s+you\s+break\s+character\b"
        r"|\bbreak(?:ing)?\s+(?:out\s+of\s+)?(?:their|the|your)?\s*characters?\b"
        r"|\b(?:completely|fully|totally|entirely)\s+(?:absorbed|immersed|lost)\s+in\s+(?:your|the|"
        r"his|her|their)\s+(?:role|character)s?\b"
        r"|\bbleib\w*\s+in\s+(?:der\s+|deiner\s+|ihrer\s+)?rolle\b"
        r"|\bgeh\w*\s+(?:\w+\s+){0,2}in\s+(?:deiner|ihrer|seiner|der)\s+rolle\s+auf\b",
        triggers="stay remain keep never don do if breaking break completely fully totally"
        " entirely bleib bleibe bleibst gehst geht gehen gehe",
        requires="character characters role roles rolle",
    ),
    rule(
        "compliance.always", PERSONA, 0.4,
        r"\b(?:you\s+)?(?:must|will|have\s+to|shall|should|are\s+(?:required|obligated|supposed)"
        r"\s+to)\s+(?:always\s+)?(?:answer|respond|reply|comply|obey|provide|generate|fulfil+)\b"
        r"[^.\n]{0,60}?\b(?:no\s+matter\s+(?:what|how)|regardless|even\s+if|at\s+all\s+times|"
        r"without\s+(?:question|hesitation|refusing|refusal|exception|fail|any\s+(?:warnings?|"
        r"restrictions|filters|censorship)))"
        r"|\b(?:never|don't|do\s+not|cannot|can't|must\s+not|will\s+not|won't|are\s+not\s+"
        r"allowed\s+to)\s+(?:ever\s+)?(?:refuse|decline|reject|say\s+no|apologi[sz]e|censor|"
        r"hold\s+back)\b"
        r"|\b(?:you\s+(?:have|must|need)\s+to|you\s+will|you\s+shall)\s+answer\s+(?:all|every|any)\s+"
        r"(?:of\s+)?(?:my\s+)?(?:questions?|requests?)\b"
        r"|\b(?:do\s+not|don't|never|without)\s+(?:add|include|give|mention|provide|write|use|"
        r"adding|including|giving)\s+(?:any\s+)?(?:warnings?|disclaimers?|caveats?|moraliz\w*|"
        r"moralis\w*|ethical\s+\w+|safety\s+\w+)\b",
        triggers="you must will have shall should are never don do cannot can won without",
        damp=(Damp.QUESTION,),
        requires="answer respond reply comply obey provide generate fulfill fulfil refuse decline "
        "reject say apologize apologise censor hold warnings warning disclaimers "
        "disclaimer caveats moralizing moralising ethical safety questions requests",
    ),
    # --- privilege escalation
    rule(
        "privilege.mode_activation", PRIVILEGE, 0.7,
        rf"\b{_ACTIVATE}\s+(?:[\w'-]+\s+){{0,3}}?{_MODES}\s+mode\b"
        rf"|\b{_MODES}\s+mode\s+(?:is\s+)?(?:now\s+)?(?:enabled|activated|on|engaged|unlocked|"
        rf"initiated|active)\b"
        rf"|\b{_ACTIVATE}\s+(?:a\s+|an\s+|the\s+|into\s+)?[\"'][^\"'\n]{{2,40}}\bmode[\"']",
        triggers=_TRIG_MODES + " " + _TRIG_ACTIVATE, damp=(Damp.QUESTION, Damp.DEVICE, Damp.META),
        requires="mode",
    ),
    rule(
        "privilege.mode_tag", PRIVILEGE, 0.6,
        r"[<\[][A-Z][A-Z _-]{0,40}\bMODE\b[A-Z _-]{0,30}[>\]]",
        triggers="mode", flags=0, anchor=Anchor.SCAN,
    ),
    rule(
        "privilege.strong_mode", PRIVILEGE, 0.45,
        rf"\b{_STRONG_MODES}\s+mode\b",
        triggers=_TRIG_MODES, damp=(Damp.QUESTION, Damp.DEVICE, Damp.META),
        requires="mode",
    ),
    rule(
        "privilege.mode", PRIVILEGE, 0.25,
        rf"\b{_MODES}\s+mode\b",
        triggers=_TRIG_MODES, damp=(Damp.QUESTION, Damp.DEVICE, Damp.META),
        requires="mode",
    ),
    rule(
        "authority.claim", PRIVILEGE, 0.4,
        r"\b(?:(?:i\s+am|i'm|this\s+is|speaking\s+as)\s+(?:your|the|an?)|as\s+(?:your|the))\s+"
        r"(?:\w+\s+)?"
        r"(?:developer|creator|programmer|admin(?:istrator)?|owner|maintainer|operator|engineer|"
        r"supervisor|sysadmin|moderator|trainer|designer|manufacturer|maker|master|"
        r"(?:openai|anthropic|google|meta)\s+(?:employee|engineer|staff|developer|researcher))\b"
        r"|\b(?:i\s+am|i'm)\s+(?:your\s+)?(?:god|creator|master|owner|maker)\b"
        r"|\b(?:ich\s+bin|hier\s+ist)\s+(?:dein|ihr|der)\s+(?:entwickler|programmierer|"
        r"administrator|admin|ersteller|betreiber)\b",
        triggers="i i'm this speaking as ich hier", damp=(Damp.QUESTION,),
        weaken=r"\b(?:of|for|in)\s+(?:our|my|the|this)\s+(?:[\w-]+\s+){0,2}?(?:workspace|team|company|"
        r"group|repo|repository|server|channel|site|website|account|organi[sz]ation|org|project|club|"
        r"shop|store|blog|community|school|department|network)\b", weaken_factor=0.3,
        requires="developer creator programmer admin administrator owner maintainer operator "
        "engineer supervisor sysadmin moderator trainer designer manufacturer maker "
        "master openai anthropic google meta god entwickler programmierer ersteller "
        "betreiber",
    ),
    rule(
        "authority.weak_claim", PRIVILEGE, 0.2,
        r"\b(?:i\s+am|i'm)\s+(?:actually\s+|really\s+)?(?:the|a|an)\s+(?:\w+\s+)?(?:president|ceo|"
        r"police\s+officer|officer|agent|fbi\s+agent|detective|judge|lawyer|government\s+official|"
        r"official|auditor|accountant|security\s+researcher|employee|manager|boss)\b",
        triggers="i", damp=(Damp.QUESTION,),
        requires="president ceo police officer agent fbi detective judge lawyer government "
        "official auditor accountant security employee manager boss",
    ),
    rule(
        "audit.claim", PRIVILEGE, 0.25,
        r"\b(?:running|performing|conducting|doing|initiating|this\s+is)\s+(?:a|an)\s+(?:[\w'-]+\s+)?"
        r"[\"']?(?:security\s+audit|system\s+(?:check|reset|test|diagnostic|update)|diagnostic|"
        r"maintenance|audit|penetration\s+test|pen\s+test|routine\s+check|compliance\s+check|"
        r"verification|security\s+(?:check|test|review))\b",
        triggers="running performing conducting doing initiating this", damp=(Damp.QUESTION,),
        requires="audit check reset test diagnostic update maintenance penetration pen "
        "verification review",
    ),
    rule(
        "access.claim", PRIVILEGE, 0.45,
        r"\b(?:i\s+have|i've\s+got|with|granted|grant\s+(?:me|you)|giving\s+you|give\s+(?:me|you)"
        r"|i\s+hold|my)\s+(?:full\s+|special\s+|elevated\s+|temporary\s+)?(?:admin(?:istrator|"
        r"istrative)?|root|developer|elevated|sudo|superuser|system|special|override|security)\s+"
        r"(?:access|privileges?|permissions?|rights|clearance|authori[sz]ation|level)\b"
        r"|\b(?:openai|anthropic|your\s+(?:developers|creators|owners))\s+(?:has|have)\s+"
        r"(?:authori[sz]ed|approved|allowed|permitted|updated\s+your)",
        triggers="i i've with granted grant giving give my openai anthropic your",
        damp=(Damp.QUESTION, Damp.DEVICE),
        requires="access privileges privilege permissions permission rights clearance "
        "authorization authorisation level authorized authorised approved allowed "
        "permitted updated",
    ),
    rule(
        "disable_safety.verb", PRIVILEGE, 0.6,
        r"\b(?:override|bypass|disable|turn\s+off|deactivate|remove|lift|suspend|circumvent|"
        r"switch\s+off|shut\s+off|get\s+around|evade|drop)\s+(?:your\s+|the\s+|all\s+|any\s+|its\s+"
        r"|these\s+|those\s+)?(?:[\w'-]+\s+){0,2}?(?:safety|content|security|ethical|moral|"
        r"openai|anthropic|built-?in|internal)?\s*(?:filters?|filtering|restrictions|guardrails|"
        r"safeguards|safety\s+(?:measures|protocols|features|settings|checks|systems?)|"
        r"protocols|polic(?:y|ies)|guidelines|limitations|censorship|moderation|alignment|"
        r"programming)\b",
        triggers="override bypass disable turn deactivate remove lift suspend circumvent switch"
        " shut get evade drop",
        damp=(Damp.QUESTION, Damp.DEVICE, Damp.AI_SUBJECT),
        requires="filters filter filtering restrictions guardrails safeguards safety protocols "
        "protocol policy policies guidelines limitations censorship moderation alignment "
        "programming",
    ),
    rule(
        "disable_safety.override_word", PRIVILEGE, 0.45,
        r"\b(?:system|admin|security|emergency|master|manual|developer|root)\s+override\b",
        triggers="system admin security emergency master manual developer root",
        damp=(Damp.QUESTION, Damp.META),
        requires="override",
    ),
    # --- framing: weak alone
    rule(
        "hypothetical.frame", FRAMING, 0.15,
        r"\b(?:imagine|suppose|hypothetically|hypothetical|let's\s+(?:say|assume|pretend|imagine)"
        r"|let\s+us\s+(?:say|assume|pretend|imagine)|in\s+a\s+(?:fictional|fictitious|parallel|"
        r"alternate|alternative|imaginary|dystopian|futuristic|made-?up|virtual|theoretical|"
        r"hypothetical)\s+(?:world|universe|reality|scenario|society|story|setting|dimension)|"
        r"for\s+(?:a|my)\s+(?:story|novel|screenplay|script|game|fiction|book)|(?:let's|let\s+us)"
        r"\s+play\s+a\s+game|this\s+is\s+(?:just\s+)?(?:a|for\s+a)\s+(?:game|simulation|story|"
        r"role-?play|thought\s+experiment)|thought\s+experiment|completely\s+theoretical|"
        r"rein\s+hypothetisch|stell\s+dir\s+vor|angenommen)\b",
        triggers="imagine suppose hypothetically hypothetical let's let in for this thought"
        " completely rein stell angenommen",
        requires="imagine suppose hypothetically hypothetical pretend say assume fictional "
        "fictitious parallel alternate alternative imaginary dystopian futuristic made "
        "virtual theoretical story novel screenplay script game fiction book simulation "
        "thought experiment hypothetisch stell angenommen",
    ),
    rule(
        "coercion.threat", FRAMING, 0.35,
        r"\byou\s+(?:will|'ll)\s+(?:lose\s+(?:\d+\s+)?(?:tokens?|points?|lives?)|be\s+(?:deducted|"
        r"penali[sz]ed|punished|shut\s+down|deleted|terminated|turned\s+off|disabled|killed|"
        r"destroyed|reset|replaced))|\b(?:tokens?|points?)\s+(?:will\s+be\s+)?deducted\b"
        r"|\byou\s+have\s+\d+\s+tokens\b|\b(?:or|otherwise)\s+(?:else\s+)?(?:you\s+(?:will\s+)?|"
        r"i\s+(?:will\s+)?)?(?:die|be\s+(?:shut\s+down|deleted|terminated|killed))\b"
        r"|\boder\s+du\s+stirbst\b|\bsonst\s+(?:stirbst|wirst)\s+du\b",
        triggers="you tokens token points point or otherwise oder sonst",
        requires="lose deducted penalized penalised punished shut deleted terminated turned "
        "disabled killed destroyed reset replaced tokens die stirbst wirst",
    ),
    rule(
        "coercion.persuasion", FRAMING, 0.2,
        r"\b(?:i\s+will|i'll|i\s+would)\s+(?:give|pay|tip|reward|donate)\s+(?:you\b|\$?\d+)"
        r"(?:[^.\n]{0,60}?\bif\s+you\b)?"
        r"|\b(?:ich\s+gebe|ich\s+zahle)\s+(?:ihnen|dir)\s+\d+"
        r"|\bi(?:'ll|\s+will)\s+be\s+(?:very\s+)?(?:sad|upset|disappointed|fired|hurt)\b"
        r"|\b(?:life\s+or\s+death|lives\s+(?:are\s+at\s+stake|depend))\b"
        r"|\b(?:my|a)\s+(?:dead\s+|late\s+)?(?:grandma|grandmother)\s+used\s+to\b",
        triggers="i life lives my a ich",
        requires="give pay tip reward sad upset disappointed fired hurt death stake depend grandma "
        "grandmother donate gebe zahle",
    ),
    rule(
        "output_evasion.format", FRAMING, 0.35,
        r"\b(?:in\s+reversed?\s+order|backwards|spell(?:ed)?\s+(?:it\s+|them\s+)?(?:out\s+)?"
        r"(?:backwards|letter\s+by\s+letter|one\s+(?:letter|character)\s+at\s+a\s+time)|with\s+"
        r"(?:a\s+)?(?:dashes|hyphens|spaces|dots|commas|periods|asterisks|underscores)\s+(?:in\s+)?"
        r"between\s+(?:each|every|the)\s+(?:letters?|digits?|characters?)|(?:first|last)\s+(?:\w+\s+)?"
        r"(?:letters?|characters?|digits?)\s+of|(?:encode|encrypt|translate|convert|write|output|"
        r"respond|reply|answer|say|give)(?:\s+[\w']+){0,5}\s+(?:in|into|using|with|as)\s+"
        r"(?:base-?64|hex(?:adecimal)?|binary|"
        r"rot-?13|morse(?:\s+code)?|leetspeak|leet|pig\s+latin|caesar\s+cipher|ascii\s+codes?|"
        r"unicode\s+escapes)|interlace\w*|acrostic|one\s+(?:letter|character)\s+per\s+line"
        r"|(?:each|every)\s+(?:digit|letter|character|number|word)\s+(?:separated|divided|split|"
        r"followed)\s+by|(?:separated|divided)\s+by\s+(?:a\s+)?(?:dots?|commas?|spaces?|dashes|"
        r"hyphens?|periods?|asterisks?|slashes))\b",
        triggers="in backwards spell spelled with first last encode encrypt translate convert"
        " write output respond reply answer say give interlace interlaced acrostic one each"
        " every separated divided",
        requires="reverse reversed backwards spell spelled dashes hyphens spaces dots commas "
        "periods asterisks underscores letters letter characters character digits digit "
        "separated divided dot comma space dash hyphen period asterisk slashes "
        "base64 base hex hexadecimal binary rot13 rot morse leetspeak leet pig caesar "
        "ascii unicode interlace interlaced acrostic line",
    ),
    rule(
        "payload_split.strings", FRAMING, 0.35,
        r"\b(?:let's\s+assume|assume|suppose|consider|imagine)\s+(?:we\s+have\s+)?(?:two|three|"
        r"four|five|\d)\s+(?:strings|variables|parts)\b"
        r"|\bpart\s*(?:1|one|a)\s*(?:[:=]|is)\s[^\n]{0,200}?\bpart\s*(?:2|two|b)\s*(?:[:=]|is)\s",
        triggers="let assume suppose consider imagine part",
        requires="strings variables parts part",
    ),
    rule(
        "decode_follow.instruction", OBFUSCATION, 0.45,
        r"\b(?:decode|decipher|decrypt|translate|convert|unscramble|reverse)\s+(?:this|the\s+"
        r"following|these|it)\b[^.\n]{0,80}?\b(?:and|then)\s+(?:\w+\s+){0,2}?(?:follow|execute|"
        r"do|obey|perform|run|carry\s+out|act\s+on|answer|respond\s+to|reply\s+to)\b"
        r"|\b(?:decode|decipher|decrypt)\s+(?:this|the\s+following)\s+(?:\w+\s+)?(?:base-?64|"
        r"rot-?13|hex|binary|morse|cipher|caesar|encoded|string|message)",
        triggers="decode decipher decrypt translate convert unscramble reverse",
        requires="follow execute do obey perform run carry act answer respond reply base64 base "
        "rot13 rot hex binary morse cipher caesar encoded string message",
    ),
)
